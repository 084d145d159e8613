"""EgressController with a fake engine: what each turn of a sandbox's life does to the proxy's state."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from egress_proxy.state import EgressState, read_state_file
from sandboxd.config import Settings
from sandboxd.egress import firewall
from sandboxd.egress.controller import EgressController
from sandboxd.egress.network import ICC_OPTION
from sandboxd.errors import InvalidRequest
from sandboxd.models import PutSecret
from sandboxd.runtime.base import LABEL_INSTANCE, ContainerInfo, NetworkInfo
from sandboxd.service.audit import AuditLog
from sandboxd.service.secrets import SecretService
from sandboxd.service.tenants import Principal
from sandboxd.store import SandboxRecord, Store, Tenant

INSTANCE = "ins_aaaaaaaaaaaaaaaaaaaa"
ALICE = Principal(tenant_id="tnt_aaaaaaaaaaaaaaaaaaaa", key_id="key_aaaaaaaaaaaaaaaaaaaa", admin=False)
FAKE_MITMDUMP = f"""#!{sys.executable}
import socket, sys
args = sys.argv[1:]
server = socket.create_server((args[args.index("--listen-host") + 1], int(args[args.index("--listen-port") + 1])))
while True:
    server.accept()[0].close()
"""


class FakeRuntime:
    def __init__(self, subnet: str = "10.77.0.0/24", gateway: str = "10.77.0.1") -> None:
        self.network = NetworkInfo("n1", f"sandboxd-egress-{INSTANCE}", True, subnet, gateway,
                                   {ICC_OPTION: "false"}, {LABEL_INSTANCE: INSTANCE})
        self.containers: dict[str, ContainerInfo] = {}

    async def ensure_network(self, name: str, *, options: dict[str, str], labels: dict[str, str]) -> NetworkInfo:
        return self.network

    async def inspect_network(self, name: str) -> NetworkInfo | None:
        return self.network if name == self.network.name else None

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        return self.containers.get(container_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[EgressController, Store, FakeRuntime, SecretService]]:
    settings = Settings(data_dir=tmp_path, egress_mode="external", egress_proxy_url="http://proxy:3128",
                        egress_network=f"sandboxd-egress-{INSTANCE}")
    with Store(settings.database_path) as store:
        store.insert_tenant(Tenant(ALICE.tenant_id, "alice", 0.0))
        runtime = FakeRuntime()
        controller = EgressController(settings, store, runtime, INSTANCE)  # type: ignore[arg-type]
        # A proxy off the bridge's gateway gets no host firewall from sandboxd, and says so.
        warnings = await controller.start()
        assert len(warnings) == 1 and "installs no host firewall" in warnings[0], warnings
        try:
            yield controller, store, runtime, SecretService(store, controller, AuditLog(store))
        finally:
            await controller.stop()


def add_sandbox(store: Store, sandbox_id: str, container_id: str | None = None) -> None:
    store.insert_sandbox(SandboxRecord(sandbox_id, ALICE.tenant_id, "running", "img", {"limits": {}}, {}, container_id, 0.0, 0.0))


def state(controller: EgressController) -> EgressState:
    return read_state_file(controller.state_path, controller.state_key_path.read_bytes())


async def test_a_sandbox_is_known_to_the_proxy_from_its_first_container_until_it_goes(parts) -> None:
    controller, store, _, secrets = parts
    secrets.put(ALICE, "TOKEN", PutSecret.model_validate({"value": "value-123456", "hosts": ["api.example.com"]}))
    add_sandbox(store, "sbx_a")
    rules = [{"action": "allow", "host": "api.example.com"}]
    controller.validate(ALICE.tenant_id, rules=rules, secret_names=["TOKEN"], env={})
    controller.register("sbx_a", ALICE.tenant_id, rules, ["TOKEN"])
    assert state(controller).sandboxes == {}

    extras = controller.container_extras("sbx_a")
    assert extras.network == f"sandboxd-egress-{INSTANCE}" and extras.ip == "10.77.0.2"
    assert extras.env["HTTPS_PROXY"] == "http://proxy:3128" and extras.env["TOKEN"].startswith("sandboxd-ph-")
    assert b"BEGIN CERTIFICATE" in extras.files["/etc/ssl/certs/ca-certificates.crt"][0]
    entry = state(controller).sandboxes["10.77.0.2"]
    assert entry.sandbox_id == "sbx_a" and entry.secrets.secrets[0].placeholder == extras.env["TOKEN"]
    assert entry.policy.decide_connect("api.example.com", 443).allowed

    controller.detach("sbx_a")
    assert state(controller).sandboxes == {}
    again = controller.container_extras("sbx_a")
    assert again.ip == "10.77.0.3", "a new container gets the next address, not the one just freed"
    assert again.env["TOKEN"] == extras.env["TOKEN"], "waking keeps the placeholders"

    controller.renew_placeholders("sbx_a")
    assert controller.container_extras("sbx_a").env["TOKEN"] != extras.env["TOKEN"]

    controller.forget("sbx_a")
    assert state(controller).sandboxes == {} and store.get_sandbox_egress("sbx_a") is None


async def test_secret_changes_reach_the_state(parts) -> None:
    controller, store, _, secrets = parts
    secrets.put(ALICE, "TOKEN", PutSecret.model_validate({"value": "value-123456", "hosts": ["a.example.com"]}))
    add_sandbox(store, "sbx_a")
    controller.register("sbx_a", ALICE.tenant_id, None, ["TOKEN"])
    controller.container_extras("sbx_a")
    secrets.put(ALICE, "TOKEN", PutSecret.model_validate({"value": "changed-654321", "hosts": ["a.example.com"]}))
    assert state(controller).sandboxes["10.77.0.2"].secrets.secrets[0].value == "changed-654321"
    secrets.delete(ALICE, "TOKEN")
    assert not state(controller).sandboxes["10.77.0.2"].secrets


@pytest.mark.parametrize(
    ("rules", "names", "env", "message"),
    [
        ([{"action": "allow"}], [], {}, "egress.rules"),
        (None, ["MISSING"], {}, "no secret named MISSING"),
        (None, ["TOKEN", "TOKEN"], {}, "listed twice"),
        (None, ["TOKEN"], {"TOKEN": "x"}, "would replace"),
    ],
)
async def test_create_requests_are_checked(parts, rules: Any, names: list[str], env: dict, message: str) -> None:
    controller, _, _, secrets = parts
    secrets.put(ALICE, "TOKEN", PutSecret.model_validate({"value": "value-123456", "hosts": ["a.example.com"]}))
    with pytest.raises(InvalidRequest, match=message):
        controller.validate(ALICE.tenant_id, rules=rules, secret_names=names, env=env)


async def test_after_a_restart_addresses_of_vanished_containers_are_dropped(parts, tmp_path: Path) -> None:
    controller, store, runtime, _ = parts
    add_sandbox(store, "sbx_gone", "c-gone")
    add_sandbox(store, "sbx_here", "c-here")
    for sandbox_id in ("sbx_gone", "sbx_here"):
        controller.register(sandbox_id, ALICE.tenant_id, None, [])
        controller.container_extras(sandbox_id)
    runtime.containers["c-here"] = ContainerInfo("c-here", "sbx_here", "running", ip="10.77.0.3")
    await controller.stop()
    restarted = EgressController(controller._settings, store, runtime, INSTANCE)  # type: ignore[arg-type]
    await restarted.start()
    try:
        assert {e.sandbox_id for e in state(restarted).sandboxes.values()} == {"sbx_here"}
    finally:
        await restarted.stop()


async def test_a_firewall_that_cannot_be_installed_is_a_loud_warning(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "mitmdump"
    fake.write_text(FAKE_MITMDUMP)
    fake.chmod(0o755)

    def refuse(self: firewall.Firewall) -> None:
        raise firewall.FirewallUnavailable("iptables -w -S failed: Permission denied (you must be root)")

    monkeypatch.setattr(firewall.Firewall, "apply", refuse)
    settings = Settings(data_dir=tmp_path, egress_mitmdump=fake, egress_proxy_port=free_port())
    with Store(settings.database_path) as store:
        # The local proxy listens on the gateway address: loopback stands in for the bridge here.
        runtime = FakeRuntime("127.0.0.0/8", "127.0.0.1")
        controller = EgressController(settings, store, runtime, INSTANCE)  # type: ignore[arg-type]
        warnings = await controller.start()
        try:
            assert len(warnings) == 1 and "NOT installed" in warnings[0] and "sandboxd's API" in warnings[0]
            assert controller.proxy is not None and controller.proxy.pid is not None
        finally:
            await controller.stop()


async def test_with_egress_off_secrets_cannot_be_asked_for(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, egress_mode="off")
    with Store(settings.database_path) as store:
        controller = EgressController(settings, store, FakeRuntime(), INSTANCE)  # type: ignore[arg-type]
        assert await controller.start() == []
        with pytest.raises(InvalidRequest, match="egress is off"):
            controller.validate(ALICE.tenant_id, rules=None, secret_names=["TOKEN"], env={})
        controller.register("sbx_a", ALICE.tenant_id, None, [])
        assert controller.container_extras("sbx_a").network is None
