"""Snapshots: a sandbox's whole filesystem, saved as an image; rollback and forks from it.

A snapshot is a commit of the sandbox's container (``sandboxd.service.images``):
the engine freezes the container while it copies the writable layer, so the
snapshot is consistent, and it stores only what changed on top of the image the
container ran from. A sandbox forked from a snapshot runs on the snapshot's
image, so its own snapshots are increments of that one, and forks share the
snapshot's data copy-on-write through the image layers.

Nothing is half-present after a crash: a row in state ``creating`` is written
before the engine is asked for anything and turned ``ready`` only after; on
start, ``reconcile`` removes whatever a ``creating`` or ``deleting`` row left.
Restores record the filesystem they switch to before the old container goes, so
a restore interrupted anywhere finishes on the next start (the sandbox wakes on
the snapshot at its next call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

from sandboxd.errors import Conflict, InvalidRequest, NotFound, SandboxdError
from sandboxd.ids import new_id, parse_id
from sandboxd.models import CreateSandbox, CreateSnapshot, ForkRequest
from sandboxd.runtime.base import LABEL_IMAGE_OWNER, Runtime
from sandboxd.service import images
from sandboxd.service.audit import AuditLog
from sandboxd.service.sandboxes import SandboxService
from sandboxd.service.tenants import Principal
from sandboxd.store import SandboxRecord, SnapshotRecord, Store

log = logging.getLogger(__name__)

# States in which a sandbox has a filesystem to save or to replace.
_SNAPSHOTTABLE: Final = frozenset({"running", "paused", "stopped", "hibernated"})
# What a fork inherits from the sandbox a snapshot was taken of.
_INHERITED: Final = ("limits", "env", "idle_timeout_s", "idle_action", "max_lifetime_s", "on_wake")
_FORKS_AT_ONCE: Final = 4


class SnapshotService:
    def __init__(self, store: Store, runtime: Runtime, sandboxes: SandboxService, audit: AuditLog) -> None:
        self._store = store
        self._runtime = runtime
        self._sandboxes = sandboxes
        self._audit = audit

    # --- lookups -------------------------------------------------------------------------------

    def get(self, principal: Principal, snapshot_id: str) -> SnapshotRecord:
        snapshot_id = parse_id("snp", snapshot_id, "snapshot id")
        record = self._store.get_snapshot(snapshot_id)
        if record is None or record.tenant_id != principal.tenant_id:
            raise NotFound(f"no snapshot {snapshot_id}")
        return record

    def ready(self, principal: Principal, snapshot_id: str) -> SnapshotRecord:
        record = self.get(principal, snapshot_id)
        if record.state != "ready":
            raise Conflict(f"snapshot {record.id} is {record.state}; retry once it is ready")
        return record

    def list(
        self, principal: Principal, *, sandbox_id: str | None = None, labels: dict[str, str] | None = None
    ) -> list[SnapshotRecord]:
        if sandbox_id is not None:
            sandbox_id = parse_id("sbx", sandbox_id, "sandbox id")
        return self._store.list_snapshots(tenant_id=principal.tenant_id, sandbox_id=sandbox_id, labels=labels or None)

    # --- create --------------------------------------------------------------------------------

    async def create(self, principal: Principal, sandbox_id: str, req: CreateSnapshot) -> SnapshotRecord:
        """Save the sandbox's filesystem; the sandbox carries on (frozen for the copy only).

        Raises:
            NotFound: no such sandbox for this tenant.
            Conflict: the sandbox is not in a state with a filesystem to save.
        """
        source = self._sandboxes.get(principal, sandbox_id)
        with self._audit.recording(
            principal, "snapshot.create", sandbox_id=source.id, args={"name": req.name, "labels": req.labels}
        ) as pending:
            async with self._sandboxes.lock(source.id):
                source = self._store.get_sandbox(source.id) or source
                if source.state not in _SNAPSHOTTABLE:
                    raise Conflict(f"sandbox {source.id} is {source.state}; snapshots need a running or sleeping sandbox")
                record = self._begin(principal, source, req)
                pending.args["snapshot_id"] = record.id
                try:
                    record = await self._save(source, record)
                except BaseException:
                    await self._abandon(record)
                    raise
            return record

    def _egress_of(self, sandbox_id: str) -> dict[str, object]:
        """The sandbox's own egress rules and the names of its secrets, for its forks to inherit.

        Names only: each fork gets placeholders of its own when it is created.
        """
        row = self._store.get_sandbox_egress(sandbox_id)
        inherited: dict[str, object] = {"secrets": sorted(self._store.sandbox_placeholders(sandbox_id))}
        if row is not None and row.policy is not None:
            inherited["egress"] = {"rules": row.policy}
        return inherited

    def _begin(self, principal: Principal, source: SandboxRecord, req: CreateSnapshot) -> SnapshotRecord:
        now = time.time()
        snapshot_id = new_id("snp")
        record = SnapshotRecord(
            id=snapshot_id,
            tenant_id=principal.tenant_id,
            sandbox_id=source.id,
            parent_id=source.spec.get("snapshot_id"),
            name=req.name,
            labels=req.labels,
            state="creating",
            image=images.snapshot_image(snapshot_id),
            image_id=None,
            size_bytes=None,
            total_bytes=None,
            spec={key: source.spec.get(key) for key in _INHERITED} | self._egress_of(source.id),
            created_at=now,
            updated_at=now,
        )
        self._store.insert_snapshot(record)
        return record

    async def _save(self, source: SandboxRecord, record: SnapshotRecord) -> SnapshotRecord:
        underneath = await self._runtime.inspect_image(images.rootfs_image(source))
        if source.state == "hibernated" or source.container_id is None:
            # Asleep, its filesystem is already an image: the snapshot is one more name for it.
            await self._runtime.tag_image(images.rootfs_image(source), record.image)
            info = await self._runtime.inspect_image(record.image)
            if info is None:
                raise NotFound(f"the image of sandbox {source.id} is gone")
        else:
            # Keep the sandbox's own env, egress variables and secret placeholders out of the image.
            env = self._sandboxes.commit_env(source, underneath.env if underneath else ())
            info = await self._runtime.commit(
                source.container_id, record.image, labels=images.image_labels(snapshot_id=record.id), env=env
            )
        parent = await self._runtime.inspect_image(
            images.snapshot_image(record.parent_id) if record.parent_id else source.image
        )
        added = info.size - parent.size if parent is not None else None
        return self._store.update_snapshot(
            record.id, state="ready", image_id=info.id, size_bytes=added, total_bytes=info.size
        )

    async def _abandon(self, record: SnapshotRecord) -> None:
        """Undo a snapshot that did not finish; never raises, so the original error reaches the caller."""
        with contextlib.suppress(Exception):
            await self._runtime.remove_image(record.image)
        with contextlib.suppress(Exception):
            self._store.delete_snapshot(record.id, reparent_to=record.parent_id)

    # --- delete --------------------------------------------------------------------------------

    def dependents(self, record: SnapshotRecord) -> tuple[list[str], list[str]]:
        """The sandboxes whose filesystem descends from this snapshot, and the snapshots built on it."""
        sandboxes = self._store.sandboxes_from_snapshot(record.id)
        children = [s.id for s in self._store.list_snapshots(parent_id=record.id)]
        return sandboxes, children

    async def delete(self, principal: Principal, snapshot_id: str, *, force: bool = False) -> None:
        """Delete a snapshot; refused while sandboxes or snapshots depend on it, unless forced.

        Forcing removes the snapshot from view; the engine keeps the layers its dependents
        still use, and the image itself goes once nothing runs from it.

        Raises:
            NotFound: no such snapshot for this tenant.
            Conflict: others depend on it and ``force`` is false.
        """
        record = self.get(principal, snapshot_id)
        with self._audit.recording(principal, "snapshot.delete", args={"snapshot_id": record.id, "force": force}):
            sandboxes, children = self.dependents(record)
            if (sandboxes or children) and not force:
                raise Conflict(
                    f"snapshot {record.id} is in use by {_describe(sandboxes, 'sandbox', 'sandboxes')}"
                    f"{' and ' if sandboxes and children else ''}{_describe(children, 'snapshot', 'snapshots')}; "
                    "delete those first, or pass force=true",
                    sandboxes=sandboxes,
                    snapshots=children,
                )
            self._store.update_snapshot(record.id, state="deleting")
            await self._release_image(record.image)
            self._store.delete_snapshot(record.id, reparent_to=record.parent_id)

    async def _release_image(self, image: str) -> None:
        # A sandbox asleep on this very image (restored, not yet woken) still needs the name.
        if any(images.rootfs_image(s) == image for s in self._store.list_sandboxes()):
            return
        await self._runtime.remove_image(image)

    # --- restore and fork ----------------------------------------------------------------------

    async def restore(self, principal: Principal, sandbox_id: str, snapshot_id: str) -> SandboxRecord:
        """Roll the sandbox's filesystem back to the snapshot; same id, processes restart.

        Raises:
            NotFound: no such sandbox or snapshot for this tenant.
            Conflict: the sandbox is busy changing state, or the snapshot is not ready.
        """
        record = self._sandboxes.get(principal, sandbox_id)
        snapshot = self.ready(principal, snapshot_id)
        with self._audit.recording(principal, "sandbox.restore", sandbox_id=record.id, args={"snapshot_id": snapshot.id}):
            if await self._runtime.inspect_image(snapshot.image) is None:
                raise Conflict(f"the image of snapshot {snapshot.id} is missing from this host; import it again")
            async with self._sandboxes.lock(record.id):
                record = self._store.get_sandbox(record.id) or record
                if record.state not in _SNAPSHOTTABLE:
                    raise Conflict(f"sandbox {record.id} is {record.state} and cannot be restored now")
                record = await self.switch_filesystem(record, snapshot)
            # Waking runs the sandbox's start command, as after any sleep.
            return await self._sandboxes.wake(record)

    async def switch_filesystem(self, record: SandboxRecord, snapshot: SnapshotRecord) -> SandboxRecord:
        """Point the sandbox at the snapshot and drop its container: it is then asleep on the snapshot.

        The caller holds the sandbox's lock. The first write records the intent (state
        ``restoring`` with the new filesystem), so a crash after it is finished by
        ``finish_restore`` on the next start.
        """
        previous = images.rootfs_image(record)
        spec = {**record.spec, "snapshot_id": snapshot.id, "rootfs_image": snapshot.image}
        record = self._store.update_sandbox(record.id, state="restoring", spec=spec)
        return await self.finish_restore(record, previous)

    async def finish_restore(self, record: SandboxRecord, previous: str | None = None) -> SandboxRecord:
        await self._sandboxes.forget_agent(record.id)
        if record.container_id:
            await self._runtime.remove(record.container_id)
        record = self._store.update_sandbox(record.id, state="hibernated", container_id=None, error=None)
        hibernation = images.hibernation_image(record.id)
        if previous is None or previous == hibernation:
            await self._runtime.remove_image(hibernation)
        return record

    async def fork(self, principal: Principal, snapshot_id: str, req: ForkRequest) -> list[SandboxRecord]:
        """``req.count`` new sandboxes on the snapshot's filesystem, each with its own id and audit trail.

        All or nothing: if one cannot be made, the others are removed again.

        Raises:
            NotFound: no such snapshot for this tenant.
            Conflict: the snapshot is not ready.
        """
        snapshot = self.ready(principal, snapshot_id)
        if await self._runtime.inspect_image(snapshot.image) is None:
            raise Conflict(f"the image of snapshot {snapshot.id} is missing from this host; import it again")
        spec = snapshot.spec
        limits = spec.get("limits") or {}
        try:
            create = CreateSandbox(
                image=snapshot.image,
                env=req.env if req.env is not None else spec.get("env") or {},
                cpus=limits.get("cpus"),
                memory_mb=limits.get("memory_mb"),
                pids=limits.get("pids"),
                nofile=limits.get("nofile"),
                disk_gb=limits.get("disk_gb"),
                labels=req.labels,
                idle_timeout_s=spec.get("idle_timeout_s"),
                max_lifetime_s=spec.get("max_lifetime_s"),
                idle_action=spec.get("idle_action"),
                on_wake=spec.get("on_wake"),
                egress=spec.get("egress"),
                secrets=spec.get("secrets") or [],
            )
        except ValueError as exc:
            raise InvalidRequest(f"snapshot {snapshot.id} carries settings this server refuses: {exc}") from None
        gate = asyncio.Semaphore(_FORKS_AT_ONCE)

        async def one() -> SandboxRecord:
            async with gate:
                made = await self._sandboxes.create(principal, create, extra_spec={"snapshot_id": snapshot.id})
                await self._sandboxes.run_on_wake(made)
                return made

        with self._audit.recording(
            principal, "snapshot.fork", args={"snapshot_id": snapshot.id, "count": req.count}
        ) as pending:
            results = await asyncio.gather(*(one() for _ in range(req.count)), return_exceptions=True)
            made = [r for r in results if isinstance(r, SandboxRecord)]
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                for record in made:
                    with contextlib.suppress(SandboxdError):
                        await self._sandboxes.delete(principal, record.id)
                raise failures[0]
            pending.args["sandbox_ids"] = [r.id for r in made]
            return made

    # --- after a restart, and tidying up -------------------------------------------------------

    async def reconcile(self) -> dict[str, int]:
        """Remove what unfinished snapshot creations and deletions left; returns what was removed."""
        removed = 0
        for state in ("creating", "deleting"):
            for record in self._store.list_snapshots(state=state):
                await self._release_image(record.image)
                self._store.delete_snapshot(record.id, reparent_to=record.parent_id)
                removed += 1
        return {"snapshots_removed": removed}

    async def collect_garbage(self, instance_id: str) -> int:
        """Drop image names no record needs any more, and our images nothing names; returns how many.

        Only images labelled as this daemon's are considered, so daemons sharing an engine
        never touch each other's. The engine refuses to remove an image a container or a
        child image still needs, so this is safe to run at any time, and simply retried.
        """
        needed = {s.image for s in self._store.list_snapshots()}
        needed.update(images.rootfs_image(s) for s in self._store.list_sandboxes())
        dropped = 0
        for image in await self._runtime.list_images({LABEL_IMAGE_OWNER: instance_id}):
            stale = [
                tag
                for tag in image.tags
                if tag.startswith((images.SNAPSHOT_REPOSITORY + ":", images.HIBERNATION_REPOSITORY + ":"))
                and tag not in needed
            ]
            for tag in stale:
                await self._runtime.remove_image(tag)
                dropped += 1
        for image in await self._runtime.list_images({LABEL_IMAGE_OWNER: instance_id}, dangling=True):
            await self._runtime.remove_image(image.id)
            dropped += 1
        return dropped


def _describe(ids: list[str], one: str, many: str) -> str:
    if not ids:
        return ""
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    return f"{one if len(ids) == 1 else many} {shown}"
