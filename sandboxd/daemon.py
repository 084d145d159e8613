"""The daemon's parts, wired once from the settings.

The HTTP API, the MCP endpoint and the tests all build a ``Daemon`` and talk to
its services; nothing else constructs a store or a runtime, so there is exactly
one of each per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sandboxd.config import Settings
from sandboxd.egress.controller import EgressController
from sandboxd.ids import new_id
from sandboxd.runtime.base import Runtime
from sandboxd.service.audit import AuditLog
from sandboxd.service.changes import ChangeService
from sandboxd.service.egress import EgressService
from sandboxd.service.exec import ExecService
from sandboxd.service.files import FileService
from sandboxd.service.lifecycle import Lifecycle, Policy
from sandboxd.service.portability import Portability
from sandboxd.service.sandboxes import SandboxService
from sandboxd.service.secrets import SecretService
from sandboxd.service.snapshots import SnapshotService
from sandboxd.service.tenants import TenantService
from sandboxd.store import Store


@dataclass
class Daemon:
    settings: Settings
    store: Store
    runtime: Runtime
    audit: AuditLog
    tenants: TenantService
    sandboxes: SandboxService
    exec: ExecService
    files: FileService
    snapshots: SnapshotService
    lifecycle: Lifecycle
    portability: Portability
    changes: ChangeService
    # The sandbox network, firewall and egress proxy (sandboxd.egress), and what the API does with them.
    egress: EgressController
    egress_policies: EgressService
    secrets: SecretService
    instance_id: str
    # The admin key generated on this start, shown once by `serve`; None when it already existed.
    new_admin_key: str | None = None
    # Conditions an operator must know about (weakened isolation and the like), shown in /v1/health.
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, runtime: Runtime | None = None) -> Daemon:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.data_dir, 0o700)
        store = Store(settings.database_path)
        instance_id = store.get_meta("instance_id")
        if instance_id is None:
            instance_id = new_id("ins")
            store.set_meta("instance_id", instance_id)
        if runtime is None:
            from sandboxd.runtime.docker import DockerRuntime

            runtime = DockerRuntime(
                instance_id, shared_dir=settings.socket_root / "shared", container_runtime=settings.container_runtime
            )
        audit = AuditLog(store)
        tenants = TenantService(store, audit)
        egress = EgressController(settings, store, runtime, instance_id)
        sandboxes = SandboxService(settings, store, runtime, audit, egress=egress)
        snapshots = SnapshotService(store, runtime, sandboxes, audit)
        return cls(
            settings=settings,
            store=store,
            runtime=runtime,
            audit=audit,
            tenants=tenants,
            sandboxes=sandboxes,
            exec=ExecService(settings, sandboxes, audit),
            files=FileService(sandboxes, audit, settings.max_upload_bytes),
            snapshots=snapshots,
            lifecycle=Lifecycle(
                store,
                runtime,
                sandboxes,
                snapshots,
                audit,
                instance_id=instance_id,
                server_policy=Policy(settings.idle_timeout_s, settings.idle_action, settings.max_lifetime_s),
            ),
            portability=Portability(store, runtime, snapshots, audit, spool_dir=settings.data_dir / "spool"),
            changes=ChangeService(runtime, sandboxes, snapshots),
            egress=egress,
            egress_policies=EgressService(store, sandboxes, egress, audit),
            secrets=SecretService(store, egress, audit),
            instance_id=instance_id,
        )

    async def start(self) -> dict[str, int]:
        """First-start bootstrap, then reconcile with the engine; returns what reconciliation did."""
        api_key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        self.new_admin_key = self.tenants.bootstrap(api_key)
        # Before anything makes a container: the network, the proxy and its state must be there.
        self.warnings.extend(await self.egress.start(on_traffic=self.sandboxes.touch))
        reconciled = await self.sandboxes.reconcile()
        # Finishes interrupted snapshots, hibernations and restores, then starts the idle reaper.
        reconciled.update(await self.lifecycle.start())
        return reconciled

    async def close(self) -> None:
        await self.lifecycle.stop()
        await self.egress.stop()
        await self.sandboxes.close()
        await self.runtime.close()
        self.store.close()
