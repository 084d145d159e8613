"""The daemon's parts, wired once from the settings.

The HTTP API, the MCP endpoint and the tests all build a ``Daemon`` and talk to
its services; nothing else constructs a store or a runtime, so there is exactly
one of each per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sandboxd.config import Settings
from sandboxd.ids import new_id
from sandboxd.runtime.base import Runtime
from sandboxd.service.audit import AuditLog
from sandboxd.service.exec import ExecService
from sandboxd.service.changes import ChangeService
from sandboxd.service.files import FileService
from sandboxd.service.lifecycle import Lifecycle
from sandboxd.service.portability import Portability
from sandboxd.service.sandboxes import SandboxService
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

            runtime = DockerRuntime(instance_id, container_runtime=settings.container_runtime)
        audit = AuditLog(store)
        tenants = TenantService(store, audit)
        sandboxes = SandboxService(settings, store, runtime, audit)
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
            lifecycle=Lifecycle(store, runtime, sandboxes, snapshots, audit, instance_id=instance_id),
            portability=Portability(store, runtime, snapshots, audit, spool_dir=settings.data_dir / "spool"),
            changes=ChangeService(runtime, sandboxes, snapshots),
            instance_id=instance_id,
        )

    async def start(self) -> dict[str, int]:
        """First-start bootstrap, then reconcile with the engine; returns what reconciliation did."""
        api_key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        self.new_admin_key = self.tenants.bootstrap(api_key)
        reconciled = await self.sandboxes.reconcile()
        # Finishes interrupted snapshots, hibernations and restores, then starts the idle reaper.
        reconciled.update(await self.lifecycle.start())
        return reconciled

    async def close(self) -> None:
        await self.lifecycle.stop()
        await self.sandboxes.close()
        await self.runtime.close()
        self.store.close()
