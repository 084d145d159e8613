"""EgressController: keeps the network, firewall, proxy and its state in step with the sandboxes.

The sandbox service calls it at each turn of a sandbox's life:

    validate / register   at create: policy and secret names checked, placeholders made
    container_extras      for each new container: network, address, proxy env, CA files
    ready                 once the container answers: its address is known to the proxy
    detach                before a container goes (hibernation, deletion): address dropped
    forget                when the sandbox is gone: its egress rows dropped
    renew_placeholders    before a container on another sandbox's filesystem (restore)

and the secret and egress services call ``refresh`` after a change. Every one
of these that changes what the proxy must know rewrites the state file.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import egress_proxy
from egress_proxy.ca import ensure_ca
from sandboxd.config import Settings
from sandboxd.egress.addresses import next_address
from sandboxd.egress.firewall import Firewall, FirewallPlan, FirewallUnavailable
from sandboxd.egress.keys import SecretBox, ensure_key_file
from sandboxd.egress.log import EgressLogIngester
from sandboxd.egress.network import BRIDGE_NAME_OPTION, check_isolated, network_labels, network_name, network_options
from sandboxd.egress.policy import validate_rules
from sandboxd.egress.proxy import ProxyConfig, ProxySupervisor
from sandboxd.egress.sandbox_env import ca_files, new_placeholder, reserved_names, sandbox_env
from sandboxd.egress.state import StatePublisher
from sandboxd.errors import InvalidRequest, RuntimeFailure
from sandboxd.runtime.base import LABEL_INSTANCE, NetworkInfo, Runtime
from sandboxd.store import SandboxEgress, Store

_log = logging.getLogger(__name__)

_LAST_ADDRESS_KEY = "egress_last_address"
# Container states in which a container holds its address on the network.
_HOLDS_ADDRESS = {"running", "paused"}


@dataclass(frozen=True, slots=True)
class ContainerExtras:
    network: str | None = None
    ip: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)


class EgressController:
    def __init__(self, settings: Settings, store: Store, runtime: Runtime, instance_id: str) -> None:
        self._settings = settings
        self._store = store
        self._runtime = runtime
        self._instance_id = instance_id
        self.enabled = settings.egress_mode != "off"
        self.box = SecretBox(ensure_key_file(settings.data_dir / "secrets.key"))
        directory = settings.egress_dir
        self.state_path = directory / "state.json"
        self.state_key_path = directory / "state.key"
        self.audit_path = directory / "audit.jsonl"
        self.network: NetworkInfo | None = None
        self.proxy_url: str | None = None
        self.proxy: ProxySupervisor | None = None
        self.firewall: Firewall | None = None
        self.log: EgressLogIngester | None = None
        self.publisher: StatePublisher | None = None
        self._ca_pem = b""
        # On a network sandboxd made, it picks addresses (sandboxd.egress.addresses); elsewhere the engine does.
        self._choose_addresses = False

    # --- start and stop ------------------------------------------------------------------------

    async def start(self, on_traffic: Callable[[str], None] | None = None) -> list[str]:
        """Network, CA, state, firewall, proxy and log ingestion; returns warnings for the operator.

        Raises:
            RuntimeFailure: the network is unusable or the proxy does not start.
        """
        if not self.enabled:
            return []
        settings = self._settings
        directory = settings.egress_dir
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        self._ca_pem = ensure_ca(directory / "ca").sandbox_cert.read_bytes()
        self.publisher = StatePublisher(self._store, self.box, self.state_path, ensure_key_file(self.state_key_path))
        warnings = list(await self._ensure_network())
        assert self.network is not None
        await self._resync()
        if settings.egress_mode == "local":
            gateway = self.network.gateway
            assert gateway is not None
            self.proxy_url = f"http://{gateway}:{settings.egress_proxy_port}"
            warnings += await self._apply_firewall(gateway)
            self.proxy = ProxySupervisor(self._proxy_config(gateway), log_path=directory / "mitmdump.log",
                                         pid_path=directory / "mitmdump.pid")
            await self.proxy.start()
        else:
            self.proxy_url = settings.egress_proxy_url
            warnings += await self._firewall_for_external_proxy()
        self.log = EgressLogIngester(
            self._store, self.audit_path, on_record=on_traffic, rotate_bytes=settings.egress_audit_rotate_bytes
        )
        self.log.start()
        for warning in warnings:
            _log.warning("egress: %s", warning)
        return warnings

    async def stop(self) -> None:
        # The proxy first, so the log's last round has everything it wrote.
        if self.proxy is not None:
            await self.proxy.stop()
        if self.log is not None:
            await self.log.stop()

    async def _ensure_network(self) -> list[str]:
        settings = self._settings
        name = settings.egress_network or network_name(self._instance_id)
        if settings.egress_network is None:
            self.network = await self._runtime.ensure_network(
                name, options=network_options(self._instance_id), labels=network_labels(self._instance_id)
            )
        else:
            self.network = await self._runtime.inspect_network(name)
            if self.network is None:
                raise RuntimeFailure(f"the sandbox network {name} (SANDBOXD_EGRESS_NETWORK) does not exist")
        self._choose_addresses = self.network.labels.get(LABEL_INSTANCE) == self._instance_id
        return check_isolated(self.network, icc_allowed=settings.egress_mode == "external")

    async def _firewall_for_external_proxy(self) -> list[str]:
        """The compose layout (a proxy in the host's namespace on the bridge's gateway) takes the
        same host firewall as local mode; a proxy elsewhere leaves the host side to its operator."""
        assert self.network is not None and self.proxy_url is not None
        target = urlsplit(self.proxy_url)
        if self.network.gateway and target.hostname == self.network.gateway:
            return await self._apply_firewall(self.network.gateway, target.port or 3128)
        return [
            f"the egress proxy is external ({self.proxy_url}) and not on the sandbox bridge's gateway, so sandboxd "
            "installs no host firewall: services on this host listening on the gateway address or 0.0.0.0 are "
            "reachable from sandboxes unless the host is firewalled"
        ]

    async def _apply_firewall(self, gateway: str, proxy_port: int | None = None) -> list[str]:
        assert self.network is not None
        if not self._settings.egress_firewall:
            return [
                "the egress firewall is disabled (SANDBOXD_EGRESS_FIREWALL=false): sandboxes can reach "
                f"every service on this host listening on {gateway} or 0.0.0.0, sandboxd's API included"
            ]
        bridge = self.network.options.get(BRIDGE_NAME_OPTION) or f"br-{self.network.id[:12]}"
        self.firewall = Firewall(FirewallPlan(bridge, gateway, proxy_port or self._settings.egress_proxy_port))
        try:
            await asyncio.to_thread(self.firewall.apply)
        except FirewallUnavailable as exc:
            return [
                f"the egress firewall is NOT installed ({exc}): sandboxes can reach every service on this host "
                f"listening on {gateway} or 0.0.0.0, sandboxd's API included, and nothing but the internal network "
                "keeps them from private and metadata addresses; run sandboxd as root (or with CAP_NET_ADMIN)"
            ]
        return []

    def _proxy_config(self, gateway: str) -> ProxyConfig:
        settings = self._settings
        mitmdump = settings.egress_mitmdump or Path(sys.executable).parent / "mitmdump"
        if not mitmdump.exists():
            found = shutil.which("mitmdump")
            if found is None:
                raise RuntimeFailure(
                    "mitmdump is not installed (pip install mitmproxy, or set SANDBOXD_EGRESS_MITMDUMP); "
                    "SANDBOXD_EGRESS_MODE=off runs sandboxes without any network instead"
                )
            mitmdump = Path(found)
        return ProxyConfig(
            mitmdump=mitmdump,
            addon=Path(egress_proxy.__file__).parent / "addon.py",
            listen_host=gateway,
            listen_port=settings.egress_proxy_port,
            confdir=settings.egress_dir / "ca",
            state_path=self.state_path,
            state_key_path=self.state_key_path,
            audit_path=self.audit_path,
            upstream_ca=settings.egress_upstream_ca_bundle,
        )

    async def _resync(self) -> None:
        """After a restart: each sandbox's address as the engine has it now, then a fresh state file."""
        records = {record.id: record for record in self._store.list_sandboxes()}
        now = time.time()
        for row in self._store.list_sandbox_egress():
            record = records.get(row.sandbox_id)
            if record is None:
                self._store.delete_sandbox_egress(row.sandbox_id)
                continue
            if row.ip is None:
                continue
            info = await self._runtime.inspect(record.container_id) if record.container_id else None
            if info is None:
                ip = None
            elif info.status in _HOLDS_ADDRESS:
                ip = info.ip
            else:
                # A stopped container comes back with the address it was given; keep it reserved.
                ip = row.ip if self._choose_addresses else None
            if ip != row.ip:
                self._store.set_sandbox_ip(row.sandbox_id, ip, now)
        self.refresh()

    # --- the sandbox's side --------------------------------------------------------------------

    def validate(
        self, tenant_id: str, *, rules: list[dict[str, Any]] | None, secret_names: Iterable[str], env: Iterable[str]
    ) -> None:
        """Check a create request's egress fields.

        Raises:
            InvalidRequest: a bad rule, an unknown secret, or a secret named like another variable.
        """
        names = list(secret_names)
        if names and not self.enabled:
            raise InvalidRequest("secrets need the egress proxy, and egress is off on this server")
        if rules is not None:
            validate_rules(rules, "egress.rules")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidRequest(f"secrets: {', '.join(duplicates)} listed twice")
        unknown = [n for n in names if self._store.get_secret(tenant_id, n) is None]
        if unknown:
            raise InvalidRequest(
                f"secrets: no secret named {', '.join(unknown)} in this tenant; store it first with PUT /v1/secrets/<name>"
            )
        clashes = sorted(set(names) & (set(env) | reserved_names()))
        if clashes:
            raise InvalidRequest(
                f"secrets: {', '.join(clashes)} would replace an environment variable of the same name; "
                "rename the secret or the variable"
            )

    def register(self, sandbox_id: str, tenant_id: str, rules: list[dict[str, Any]] | None, secret_names: Iterable[str]) -> None:
        """The new sandbox's egress rows: its own policy (None: the tenant default) and a placeholder per secret."""
        if not self.enabled:
            return
        row = SandboxEgress(sandbox_id, tenant_id, rules, None, None, time.time())
        self._store.insert_sandbox_egress(row, {name: new_placeholder() for name in secret_names})

    def container_extras(self, sandbox_id: str) -> ContainerExtras:
        """What a new container of the sandbox gets; picks (and publishes) its address when sandboxd chooses."""
        row = self._store.get_sandbox_egress(sandbox_id) if self.enabled else None
        if row is None or self.network is None or self.proxy_url is None:
            return ContainerExtras()
        ip = None
        if self._choose_addresses:
            assert self.network.subnet is not None
            taken = {r.ip for r in self._store.list_sandbox_egress(attached=True) if r.ip and r.sandbox_id != sandbox_id}
            ip = next_address(self.network.subnet, self.network.gateway, self._store.get_meta(_LAST_ADDRESS_KEY), taken)
            self._store.set_meta(_LAST_ADDRESS_KEY, ip)
            self._store.set_sandbox_ip(sandbox_id, ip, time.time())
            self.refresh()
        return ContainerExtras(self.network.name, ip, self.env_for(sandbox_id), ca_files(self._ca_pem))

    def env_for(self, sandbox_id: str) -> dict[str, str]:
        """The variables egress gives the sandbox's containers (proxy, CA, placeholders); no side effects."""
        if not self.enabled or self.proxy_url is None or self._store.get_sandbox_egress(sandbox_id) is None:
            return {}
        return sandbox_env(self.proxy_url, self._store.sandbox_placeholders(sandbox_id))

    async def ready(self, sandbox_id: str, container_id: str | None) -> None:
        """The container is up: make sure the proxy knows its address before anyone uses it."""
        row = self._store.get_sandbox_egress(sandbox_id) if self.enabled else None
        if row is None or self.publisher is None:
            return
        ip = row.ip
        if not self._choose_addresses and container_id:
            info = await self._runtime.inspect(container_id)
            ip = info.ip if info else None
            if ip != row.ip:
                self._store.set_sandbox_ip(sandbox_id, ip, time.time())
                self.refresh()
        if ip is not None:
            delay = self.publisher.settle_delay(ip)
            if delay > 0:
                await asyncio.sleep(delay)

    def detach(self, sandbox_id: str) -> None:
        """The sandbox's container is about to go: its address stops meaning this sandbox, now."""
        row = self._store.get_sandbox_egress(sandbox_id) if self.enabled else None
        if row is not None and row.ip is not None:
            self._store.set_sandbox_ip(sandbox_id, None, time.time())
            self.refresh()

    def forget(self, sandbox_id: str) -> None:
        row = self._store.get_sandbox_egress(sandbox_id) if self.enabled else None
        if row is None:
            return
        self._store.delete_sandbox_egress(sandbox_id)
        if row.ip is not None:
            self.refresh()

    def renew_placeholders(self, sandbox_id: str) -> None:
        """New placeholders for the sandbox's secrets: the old ones may sit in files it did not write."""
        names = self._store.sandbox_placeholders(sandbox_id)
        if names:
            self._store.replace_placeholders(sandbox_id, {name: new_placeholder() for name in names})
            self.refresh()

    def refresh(self) -> None:
        """Rewrite the proxy's state from the store (policies, secrets or addresses changed)."""
        if self.publisher is not None:
            self.publisher.publish()
