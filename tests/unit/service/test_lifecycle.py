"""The lifecycle rules (pure), and the reaper and crash recovery against a fake engine."""

from __future__ import annotations

import time

import pytest

from sandboxd.models import CreateSandbox
from sandboxd.service.lifecycle import SERVER_POLICY, Decision, Lifecycle, Policy, decide, effective_policy
from sandboxd.store import LifecycleDefaults
from tests.unit.service.image_fakes import ALICE, INSTANCE, build

HOUR = 3600.0


def policy(idle: int | None = 60, action: str = "hibernate", lifetime: int | None = None) -> Policy:
    return Policy(idle_timeout_s=idle, idle_action=action, max_lifetime_s=lifetime)


@pytest.mark.parametrize(
    ("state", "pol", "idle_for", "age", "busy", "expected"),
    [
        ("running", policy(60), 59, HOUR, False, None),
        ("running", policy(60), 61, HOUR, False, "hibernate"),
        ("running", policy(60, "pause"), 61, HOUR, False, "pause"),
        ("paused", policy(60, "pause"), 61, HOUR, False, None),
        ("paused", policy(60, "hibernate"), 61, HOUR, False, "hibernate"),
        ("running", policy(60, "delete"), 61, HOUR, False, "delete"),
        ("running", policy(60), 10 * HOUR, HOUR, True, None),
        ("running", policy(None), 10 * HOUR, HOUR, False, None),
        ("hibernated", policy(60), 10 * HOUR, HOUR, False, None),
        ("hibernated", policy(60, lifetime=100), 0, 101, False, "delete"),
        ("running", policy(60, lifetime=100), 0, 101, True, "delete"),
        ("hibernating", policy(60, lifetime=100), 10 * HOUR, 10 * HOUR, False, None),
        ("creating", policy(60), 10 * HOUR, HOUR, False, None),
    ],
)
def test_decide(state, pol, idle_for, age, busy, expected) -> None:
    now = 10_000_000.0
    decision = decide(state=state, created_at=now - age, policy=pol, now=now, last_active=now - idle_for, busy=busy)
    assert (decision.action if decision else None) == expected


def test_decisions_say_why() -> None:
    now = 1000.0
    idle = decide(state="running", created_at=0, policy=policy(60), now=now, last_active=now - 300, busy=False)
    assert idle == Decision("hibernate", "idle 300s (timeout 60s)")
    old = decide(state="running", created_at=0, policy=policy(60, lifetime=500), now=now, last_active=now, busy=False)
    assert old is not None and old.reason.startswith("max lifetime 500s reached")


def test_effective_policy_sandbox_then_tenant_then_server() -> None:
    tenant = LifecycleDefaults("tnt_x", idle_timeout_s=120, idle_action="pause", max_lifetime_s=None, updated_at=0)
    mine = effective_policy({"idle_timeout_s": 30}, tenant, SERVER_POLICY)
    assert (mine.idle_timeout_s, mine.idle_action, mine.max_lifetime_s) == (30, "pause", None)
    assert mine.source == {"idle_timeout_s": "sandbox", "idle_action": "tenant", "max_lifetime_s": "server"}
    server = effective_policy({}, None, SERVER_POLICY)
    assert server.idle_action == "hibernate" and server.max_lifetime_s is None, "the server never deletes by default"


class Clock:
    """Starts at the wall clock (records carry real creation times), then moves only when told."""

    def __init__(self) -> None:
        self.now = time.time() + 1

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path):
    sandboxes, snapshots, runtime, store, audit = build(tmp_path)
    clock = Clock()
    sandboxes.activity._clock = clock
    sandboxes.activity._since = clock.now
    lifecycle = Lifecycle(store, runtime, sandboxes, snapshots, audit, instance_id=INSTANCE, clock=clock)
    yield lifecycle, sandboxes, runtime, store, clock
    store.close()


async def test_reaper_acts_on_idle_sandboxes_only_and_audits(parts) -> None:
    lifecycle, sandboxes, runtime, store, clock = parts
    idle = await sandboxes.create(ALICE, CreateSandbox(idle_timeout_s=60))
    used = await sandboxes.create(ALICE, CreateSandbox(idle_timeout_s=60))
    busy = await sandboxes.create(ALICE, CreateSandbox(idle_timeout_s=60, idle_action="delete"))
    clock.now += 61
    sandboxes.touch(used.id)
    sandboxes.activity.begin(busy.id)
    acted = await lifecycle.run_once()
    assert [(sid, d.action) for sid, d in acted] == [(idle.id, "hibernate")]
    assert store.get_sandbox(idle.id).state == "hibernated"
    assert store.get_sandbox(used.id).state == "running" and store.get_sandbox(busy.id).state == "running"
    (record,) = store.query_audit(None, idle.id, "sandbox.hibernate", None, None, 10, None)
    assert record.key_id is None and record.tenant_id == ALICE.tenant_id
    assert record.args["by"] == "lifecycle policy" and record.args["reason"].endswith("(timeout 60s)")
    sandboxes.activity.end(busy.id)
    clock.now += 61
    await lifecycle.run_once()
    assert store.get_sandbox(busy.id) is None, "once its call ended and the timeout passed, delete as asked"


async def test_reconcile_after_a_crash(parts) -> None:
    lifecycle, sandboxes, runtime, store, _ = parts
    hibernating = await sandboxes.create(ALICE, CreateSandbox())
    lost = await sandboxes.create(ALICE, CreateSandbox())
    waking = await sandboxes.create(ALICE, CreateSandbox())
    await sandboxes.hibernate(ALICE, waking.id)
    store.update_sandbox(hibernating.id, state="hibernating")
    store.update_sandbox(lost.id, state="hibernating")
    await runtime.remove(lost.container_id)
    half_woken = await runtime.create(sandboxes.container_spec(store.get_sandbox(waking.id)))
    store.update_sandbox(waking.id, state="waking", container_id=half_woken)

    counts = await lifecycle.reconcile()

    assert counts == {"hibernations_undone": 1, "wakes_undone": 1, "restores_finished": 0}
    assert store.get_sandbox(hibernating.id).state == "running"
    assert store.get_sandbox(lost.id).state == "failed"
    woke = store.get_sandbox(waking.id)
    assert woke.state == "hibernated" and woke.container_id is None and half_woken not in runtime.containers


async def test_reconcile_finishes_a_restore(parts) -> None:
    lifecycle, sandboxes, runtime, store, _ = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    store.update_sandbox(
        sandbox.id, state="restoring", spec={**sandbox.spec, "rootfs_image": "sandboxd-snapshot:snp_x", "snapshot_id": "snp_x"}
    )
    counts = await lifecycle.reconcile()
    assert counts["restores_finished"] == 1
    record = store.get_sandbox(sandbox.id)
    assert record.state == "hibernated" and record.container_id is None
    assert sandbox.container_id not in runtime.containers, "the old filesystem's container is gone"


async def test_start_and_stop(parts) -> None:
    lifecycle, *_ = parts
    counts = await lifecycle.start()
    assert counts["snapshots_removed"] == 0
    await lifecycle.stop()
    await lifecycle.stop()


async def test_a_sandbox_using_cpu_is_working_not_idle(parts) -> None:
    lifecycle, sandboxes, runtime, store, clock = parts
    worker = await sandboxes.create(ALICE, CreateSandbox(idle_timeout_s=60))
    sleeper = await sandboxes.create(ALICE, CreateSandbox(idle_timeout_s=60))
    runtime.cpu[worker.container_id] = 10.0
    runtime.cpu[sleeper.container_id] = 10.0
    clock.now += 61
    assert await lifecycle.run_once() == [], "a first look at the CPU acts on nothing"
    clock.now += 1
    runtime.cpu[worker.container_id] += 0.5  # half a core over the last second
    runtime.cpu[sleeper.container_id] += 0.001
    acted = await lifecycle.run_once()
    assert [sid for sid, _ in acted] == [sleeper.id]
    assert store.get_sandbox(worker.id).state == "running"
    assert sandboxes.activity.last_active(worker.id) == clock.now, "work restarts the idle clock"
