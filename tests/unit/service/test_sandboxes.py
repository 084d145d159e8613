"""SandboxService with a fake runtime and a fake supervisor: lifecycle rules and reconciliation."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxd.config import Settings
from sandboxd.errors import Conflict, ImageNotFound, InvalidRequest, NotFound, SandboxUnavailable
from sandboxd.models import CreateSandbox
from sandboxd.runtime.base import ContainerInfo
from sandboxd.service.audit import AuditLog
from sandboxd.service.sandboxes import SandboxService
from sandboxd.service.tenants import Principal
from sandboxd.store import Store, Tenant
from tests.unit.service.runtime_fakes import FakeAgent, FakeRuntime

ALICE = Principal(tenant_id="tnt_aaaaaaaaaaaaaaaaaaaa", key_id="key_aaaaaaaaaaaaaaaaaaaa", admin=False)
BOB = Principal(tenant_id="tnt_bbbbbbbbbbbbbbbbbbbb", key_id="key_bbbbbbbbbbbbbbbbbbbb", admin=False)


@pytest.fixture
def parts(tmp_path: Path):
    FakeAgent.healthy = True
    settings = Settings(data_dir=tmp_path, supervisor_start_timeout_s=0.2, max_cpus=4)
    store = Store(settings.database_path)
    for principal in (ALICE, BOB):
        store.insert_tenant(Tenant(id=principal.tenant_id, name=principal.tenant_id[-6:], created_at=0.0))
    runtime = FakeRuntime()
    audit = AuditLog(store)
    service = SandboxService(settings, store, runtime, audit, connect=FakeAgent)
    yield service, runtime, store, audit
    store.close()


async def test_create_records_limits_and_audits(parts) -> None:
    service, runtime, store, audit = parts
    record = await service.create(ALICE, CreateSandbox(cpus=0.5, labels={"a": "b"}))
    assert record.state == "running"
    spec = runtime.specs[record.container_id]
    assert spec.limits.cpus == 0.5 and spec.limits.memory_mb == 1024
    assert spec.socket_dir == service._settings.socket_root / record.id
    assert [r.action for r in store.query_audit(None, record.id, None, None, None, 10, None)] == ["sandbox.create"]


@pytest.mark.parametrize(
    "req",
    [CreateSandbox(cpus=64), CreateSandbox(memory_mb=10), CreateSandbox(pids=10**6), CreateSandbox(disk_gb=10**6)],
)
async def test_limits_out_of_range_are_refused(parts, req) -> None:
    service, runtime, *_ = parts
    with pytest.raises(InvalidRequest, match="out of range"):
        await service.create(ALICE, req)
    assert runtime.specs == {}


async def test_unknown_image(parts) -> None:
    service, *_ = parts
    with pytest.raises(ImageNotFound, match="not present"):
        await service.create(ALICE, CreateSandbox(image="nope:1"))


async def test_failed_create_leaves_nothing(parts) -> None:
    service, runtime, store, _ = parts
    FakeAgent.healthy = False
    runtime.containers.clear()
    with pytest.raises(SandboxUnavailable):
        await service.create(ALICE, CreateSandbox())
    assert store.list_sandboxes() == []
    assert runtime.containers == {}
    assert [r.result for r in store.query_audit(None, None, "sandbox.create", None, None, 10, None)] == ["error"]


async def test_other_tenants_see_not_found(parts) -> None:
    service, *_ = parts
    record = await service.create(ALICE, CreateSandbox())
    with pytest.raises(NotFound):
        service.get(BOB, record.id)
    with pytest.raises(NotFound):
        await service.delete(BOB, record.id)
    assert service.list(BOB) == []
    assert [r.id for r in service.list(ALICE)] == [record.id]


async def test_malformed_id(parts) -> None:
    service, *_ = parts
    with pytest.raises(InvalidRequest, match="sandbox id"):
        service.get(ALICE, "../../etc")


async def test_paused_sandbox_is_woken_by_use(parts) -> None:
    service, runtime, store, _ = parts
    record = await service.create(ALICE, CreateSandbox())
    await runtime.pause(record.container_id)
    store.update_sandbox(record.id, state="paused")
    woken, _ = await service.agent_for(ALICE, record.id)
    assert woken.state == "running" and runtime.containers[record.container_id].status == "running"


async def test_failed_sandbox_cannot_be_used(parts) -> None:
    service, _, store, _ = parts
    record = await service.create(ALICE, CreateSandbox())
    store.update_sandbox(record.id, state="failed", error="its container disappeared")
    with pytest.raises(Conflict, match="disappeared"):
        await service.agent_for(ALICE, record.id)


async def test_reconcile(parts) -> None:
    service, runtime, store, _ = parts
    alive = await service.create(ALICE, CreateSandbox())
    vanished = await service.create(ALICE, CreateSandbox())
    stopped = await service.create(ALICE, CreateSandbox())
    await runtime.remove(vanished.container_id)
    runtime._set(stopped.container_id, "exited")
    runtime.containers["stray"] = ContainerInfo(id="stray", sandbox_id="sbx_cccccccccccccccccccc", status="running")

    counts = await service.reconcile()

    assert counts == {"adopted": 1, "failed": 1, "removed": 1, "stopped": 1}
    assert store.get_sandbox(alive.id).state == "running"
    assert store.get_sandbox(vanished.id).state == "failed"
    assert store.get_sandbox(stopped.id).state == "stopped"
    assert "stray" not in runtime.containers
