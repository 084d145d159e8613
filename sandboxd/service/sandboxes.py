"""Sandbox lifecycle: create, look up, list, delete, and bring back after a restart.

Every sandbox belongs to one tenant; a lookup by another tenant answers NotFound,
exactly as for an id that never existed, so ids leak nothing. State lives in the
store and is written before the engine is touched, so a daemon killed mid-way
finds a record to reconcile instead of an orphaned container.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandboxd.config import Settings
from sandboxd.errors import Conflict, ImageNotFound, InvalidRequest, NotFound, SandboxdError, SandboxUnavailable
from sandboxd.ids import new_id, parse_id
from sandboxd.models import CreateSandbox
from sandboxd.runtime.base import SOCKET_NAME, ContainerSpec, Limits, Runtime
from sandboxd.runtime.supervisor_client import SupervisorClient
from sandboxd.service import images
from sandboxd.service.activity import Activity
from sandboxd.service.audit import AuditLog
from sandboxd.service.tenants import Principal
from sandboxd.store import SandboxRecord, Store

if TYPE_CHECKING:
    from sandboxd.egress.controller import EgressController

_log = logging.getLogger(__name__)

# A sandbox in one of these states has (or should have) a container.
_LIVE = {"running", "paused", "stopped", "creating"}


class SandboxService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: Runtime,
        audit: AuditLog,
        connect: Callable[[Path], SupervisorClient] = SupervisorClient,
        egress: EgressController | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._runtime = runtime
        self._audit = audit
        self._connect = connect
        # The sandbox network and the proxy's view of it (sandboxd.egress); None: no network at all.
        self._egress = egress
        self._agents: dict[str, SupervisorClient] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.activity = Activity()

    # --- lookups -----------------------------------------------------------------------------

    def get(self, principal: Principal, sandbox_id: str) -> SandboxRecord:
        sandbox_id = parse_id("sbx", sandbox_id, "sandbox id")
        record = self._store.get_sandbox(sandbox_id)
        if record is None or record.tenant_id != principal.tenant_id:
            raise NotFound(f"no sandbox {sandbox_id}")
        return record

    def list(
        self, principal: Principal, *, state: str | None = None, labels: dict[str, str] | None = None
    ) -> list[SandboxRecord]:
        return self._store.list_sandboxes(tenant_id=principal.tenant_id, state=state, labels=labels or None)

    # --- create ------------------------------------------------------------------------------

    def _limits(self, req: CreateSandbox) -> Limits:
        s = self._settings
        limits = Limits(
            cpus=req.cpus if req.cpus is not None else s.default_cpus,
            memory_mb=req.memory_mb if req.memory_mb is not None else s.default_memory_mb,
            pids=req.pids if req.pids is not None else s.default_pids,
            nofile=req.nofile if req.nofile is not None else s.default_nofile,
            disk_gb=req.disk_gb,
        )
        checks = [
            ("cpus", limits.cpus, 0.01, s.max_cpus),
            ("memory_mb", limits.memory_mb, 32, s.max_memory_mb),
            ("pids", limits.pids, 16, s.max_pids),
            ("nofile", limits.nofile, 64, s.max_nofile),
        ]
        if limits.disk_gb is not None:
            checks.append(("disk_gb", limits.disk_gb, 1, s.max_disk_gb))
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise InvalidRequest(f"{name}={value} is out of range: this server allows {low} to {high}")
        return limits

    async def create(
        self, principal: Principal, req: CreateSandbox, *, extra_spec: dict[str, Any] | None = None
    ) -> SandboxRecord:
        image = req.image or self._settings.default_image
        limits = self._limits(req)
        if not await self._runtime.image_exists(image):
            raise ImageNotFound(
                f"image {image!r} is not present on this host; build or load it first "
                "(`docker images` lists what is here)"
            )
        rules = req.egress.rule_dicts() if req.egress is not None else None
        if self._egress is not None:
            self._egress.validate(principal.tenant_id, rules=rules, secret_names=req.secrets, env=req.env)
        elif req.secrets or rules is not None:
            raise InvalidRequest("this server runs sandboxes without egress, so 'egress' and 'secrets' cannot be used")
        now = time.time()
        record = SandboxRecord(
            id=new_id("sbx"),
            tenant_id=principal.tenant_id,
            state="creating",
            image=image,
            spec={
                "limits": {
                    "cpus": limits.cpus,
                    "memory_mb": limits.memory_mb,
                    "pids": limits.pids,
                    "nofile": limits.nofile,
                    "disk_gb": limits.disk_gb,
                },
                "env": req.env,
                "idle_timeout_s": req.idle_timeout_s,
                "max_lifetime_s": req.max_lifetime_s,
                "idle_action": req.idle_action,
                "on_wake": req.on_wake,
                # Where a fork's filesystem came from (sandboxd.service.snapshots).
                **(extra_spec or {}),
            },
            labels=req.labels,
            container_id=None,
            created_at=now,
            updated_at=now,
        )
        self._store.insert_sandbox(record)
        summary = {"image": image, "labels": req.labels, "limits": record.spec["limits"], "env": sorted(req.env)}
        if self._egress is not None:
            summary["egress_policy"] = "tenant default" if rules is None else f"{len(rules)} rules"
            summary["secret_names"] = sorted(req.secrets)
        try:
            if self._egress is not None:
                self._egress.register(record.id, record.tenant_id, rules, req.secrets)
            container_id = await self._runtime.create(self.container_spec(record))
            record = self._store.update_sandbox(record.id, container_id=container_id)
            await self.wait_ready(record)
            await self._egress_ready(record)
            record = self._store.update_sandbox(record.id, state="running")
        except BaseException as exc:
            await self._discard(record)
            error = exc.message if isinstance(exc, SandboxdError) else type(exc).__name__
            self._audit.record(principal, "sandbox.create", sandbox_id=record.id, args=summary, result="error", error=error)
            raise
        self._audit.record(principal, "sandbox.create", sandbox_id=record.id, args=summary)
        return record

    def _socket_dir(self, sandbox_id: str) -> Path:
        root = self._settings.socket_root
        root.mkdir(parents=True, exist_ok=True)
        path = root / sandbox_id
        path.mkdir(exist_ok=True)
        # The supervisor runs as the sandbox user and must create its socket here; the data
        # directory above is 0700, so this opens nothing to other host users.
        path.chmod(0o777)
        return path

    async def wait_ready(self, record: SandboxRecord) -> None:
        """Poll until the supervisor answers; a container that dies meanwhile fails fast.

        The socket file appearing is the cheap signal; the engine is asked about the
        container only every quarter second, since each inspect costs a round trip.
        """
        deadline = time.monotonic() + self._settings.supervisor_start_timeout_s
        agent = self._agent(record.id)
        socket_path = self._settings.socket_root / record.id / SOCKET_NAME
        next_inspect = time.monotonic() + 0.25
        while True:
            if socket_path.exists():
                try:
                    await agent.health()
                    return
                except SandboxUnavailable:
                    pass
            now = time.monotonic()
            if record.container_id and now >= next_inspect:
                next_inspect = now + 0.25
                info = await self._runtime.inspect(record.container_id)
                if info is None or info.status in ("exited", "dead"):
                    reason = "out of memory" if info and info.oom_killed else f"exit code {info.exit_code if info else '?'}"
                    raise SandboxUnavailable(
                        f"sandbox {record.id} stopped while starting ({reason}); its image must provide python3 "
                        ">= 3.11 for the sandbox supervisor"
                    )
            if now > deadline:
                raise SandboxUnavailable(
                    f"sandbox {record.id} did not become ready within {self._settings.supervisor_start_timeout_s:g}s"
                )
            await asyncio.sleep(0.003)

    async def _discard(self, record: SandboxRecord) -> None:
        """Undo a create that did not finish; never raises, so the original error reaches the caller."""
        with contextlib.suppress(Exception):
            fresh = self._store.get_sandbox(record.id)
            if fresh and fresh.container_id:
                await self._runtime.remove(fresh.container_id)
        with contextlib.suppress(Exception):
            await self.forget_agent(record.id)
            shutil.rmtree(self._settings.socket_root / record.id, ignore_errors=True)
            self._store.delete_sandbox(record.id)
        with contextlib.suppress(Exception):
            if self._egress is not None:
                self._egress.forget(record.id)

    # --- delete ------------------------------------------------------------------------------

    async def delete(self, principal: Principal, sandbox_id: str) -> None:
        record = self.get(principal, sandbox_id)
        async with self.lock(record.id):
            self._store.update_sandbox(record.id, state="deleting")
            await self._remove_everything(record)
        self._audit.record(principal, "sandbox.delete", sandbox_id=record.id)

    async def _remove_everything(self, record: SandboxRecord) -> None:
        await self.forget_agent(record.id)
        if self._egress is not None:
            # Its address stops meaning this sandbox before another container can be given it.
            self._egress.detach(record.id)
        if record.container_id:
            await self._runtime.remove(record.container_id)
        if images.rootfs_image(record) == images.hibernation_image(record.id):
            await self._runtime.remove_image(images.hibernation_image(record.id))
        self.activity.forget(record.id)
        shutil.rmtree(self._settings.socket_root / record.id, ignore_errors=True)
        self._store.delete_sandbox(record.id)
        if self._egress is not None:
            self._egress.forget(record.id)

    # --- the way in: a live supervisor -------------------------------------------------------

    async def agent_for(self, principal: Principal, sandbox_id: str) -> tuple[SandboxRecord, SupervisorClient]:
        """The sandbox's supervisor, starting or unfreezing the sandbox first if it sleeps."""
        record = self.get(principal, sandbox_id)
        self.touch(record.id)
        record = await self.wake(record)
        return record, self._agent(record.id)

    async def wake(self, record: SandboxRecord) -> SandboxRecord:
        """Bring a sleeping sandbox back (from a pause, a stop or hibernation); takes its lock."""
        if record.state == "running":
            return record
        async with self.lock(record.id):
            record = self._store.get_sandbox(record.id) or record
            if record.state == "running":
                return record
            if record.state == "paused" and record.container_id:
                await self._runtime.unpause(record.container_id)
            elif record.state == "stopped" and record.container_id:
                await self._runtime.start(record.container_id)
                await self.wait_ready(record)
                await self._egress_ready(record)
            elif record.state == "hibernated":
                return await self._wake_from_image(record)
            elif record.state == "creating":
                raise Conflict(f"sandbox {record.id} is still being created; retry in a moment")
            else:
                detail = f": {record.error}" if record.error else ""
                raise Conflict(f"sandbox {record.id} is {record.state}{detail}; delete it and create a new one")
            return self._store.update_sandbox(record.id, state="running", error=None)

    def _agent(self, sandbox_id: str) -> SupervisorClient:
        agent = self._agents.get(sandbox_id)
        if agent is None:
            agent = self._connect(self._settings.socket_root / sandbox_id / SOCKET_NAME)
            self._agents[sandbox_id] = agent
        return agent

    async def forget_agent(self, sandbox_id: str) -> None:
        agent = self._agents.pop(sandbox_id, None)
        if agent is not None:
            await agent.aclose()

    def lock(self, sandbox_id: str) -> asyncio.Lock:
        """The lock every change to a sandbox's container is made under."""
        return self._locks.setdefault(sandbox_id, asyncio.Lock())

    async def report_unavailable(self, record: SandboxRecord) -> SandboxUnavailable:
        """Explain why a sandbox's supervisor did not answer, updating its state if its container died."""
        fresh = self._store.get_sandbox(record.id)
        if fresh is not None and fresh.container_id != record.container_id:
            # Hibernated, restored or woken while the call ran: the container was replaced on purpose.
            return SandboxUnavailable(
                f"sandbox {record.id} was hibernated, restored or woken while the call ran (it is {fresh.state} now); "
                "retry the call"
            )
        info = await self._runtime.inspect(record.container_id) if record.container_id else None
        if info is None:
            self._store.update_sandbox(record.id, state="failed", error="its container is gone")
            return SandboxUnavailable(f"sandbox {record.id} has no container any more; delete it and create a new one")
        if info.status in ("exited", "dead"):
            why = "it ran out of memory" if info.oom_killed else f"its main process exited ({info.exit_code})"
            self._store.update_sandbox(record.id, state="stopped", error=why)
            return SandboxUnavailable(f"sandbox {record.id} stopped: {why}; the next call starts it again")
        return SandboxUnavailable(f"sandbox {record.id} is {info.status} but its supervisor does not answer; retry")

    # --- after a restart ---------------------------------------------------------------------

    async def reconcile(self) -> dict[str, int]:
        """Bring the store in line with the engine: adopt what runs, fail what vanished, remove strays we own."""
        containers = {c.id: c for c in await self._runtime.list_managed()}
        known: set[str] = set()
        counts = {"adopted": 0, "failed": 0, "removed": 0, "stopped": 0}
        for record in self._store.list_sandboxes():
            if record.container_id:
                known.add(record.container_id)
            if record.state == "deleting":
                await self._remove_everything(record)
                counts["removed"] += 1
                continue
            if record.state not in _LIVE:
                continue
            info = containers.get(record.container_id or "")
            if info is None:
                if record.state == "creating":
                    await self._discard(record)
                    counts["removed"] += 1
                else:
                    self._store.update_sandbox(record.id, state="failed", error="its container disappeared")
                    counts["failed"] += 1
                continue
            if info.status == "running":
                state = "running"
            elif info.status == "paused":
                state = "paused"
            else:
                state = "stopped"
                counts["stopped"] += 1
            if record.state == "creating" and state != "running":
                await self._discard(record)
                counts["removed"] += 1
                continue
            self._store.update_sandbox(record.id, state=state)
            counts["adopted"] += state == "running"
        for container in containers.values():
            if container.id not in known:
                await self._runtime.remove(container.id)
                counts["removed"] += 1
        return counts

    async def close(self) -> None:
        for sandbox_id in list(self._agents):
            await self.forget_agent(sandbox_id)

    # --- suspension: pause, hibernate, wake, activity ------------------------------------------
    # sandboxd.service.lifecycle decides when a sandbox sleeps; these make it sleep and wake.

    def touch(self, sandbox_id: str) -> None:
        """Note that a sandbox is in use (an API call, its egress traffic): its idle clock restarts."""
        self.activity.touch(sandbox_id)

    def container_spec(self, record: SandboxRecord, image: str | None = None) -> ContainerSpec:
        """How to make the sandbox's container, from its own image or (waking, restoring) another.

        With egress, each call gives the container a new address on the sandbox network
        (and tells the proxy), so call it once per container made."""
        extras = self._egress.container_extras(record.id) if self._egress is not None else None
        env = record.spec.get("env", {})
        return ContainerSpec(
            sandbox_id=record.id,
            tenant_id=record.tenant_id,
            image=image or record.image,
            limits=Limits(**record.spec["limits"]),
            # Egress variables last: a sandbox's own HTTP_PROXY must not route around the proxy.
            env={**env, **extras.env} if extras else env,
            socket_dir=self._socket_dir(record.id),
            network=extras.network if extras else None,
            ip=extras.ip if extras else None,
            files=extras.files if extras else {},
        )

    def commit_env(self, record: SandboxRecord, image_env: Iterable[str]) -> list[str]:
        """Overrides that keep what sandboxd gave the container (its env, egress variables and
        secret placeholders) out of an image committed from it."""
        given = dict(record.spec.get("env", {}))
        if self._egress is not None:
            given.update(self._egress.env_for(record.id))
        return images.commit_env(given, image_env)

    async def _egress_ready(self, record: SandboxRecord) -> None:
        """Hold a started container back until the proxy knows its address."""
        if self._egress is not None:
            await self._egress.ready(record.id, record.container_id)

    async def remove(self, record: SandboxRecord) -> None:
        """Delete a sandbox on sandboxd's own account (its lifetime ran out); the caller audits why."""
        async with self.lock(record.id):
            record = self._store.get_sandbox(record.id) or record
            self._store.update_sandbox(record.id, state="deleting")
            await self._remove_everything(record)

    async def pause(self, principal: Principal, sandbox_id: str) -> SandboxRecord:
        record = self.get(principal, sandbox_id)
        with self._audit.recording(principal, "sandbox.pause", sandbox_id=record.id):
            return await self.suspend(record, "pause")

    async def hibernate(self, principal: Principal, sandbox_id: str) -> SandboxRecord:
        record = self.get(principal, sandbox_id)
        with self._audit.recording(principal, "sandbox.hibernate", sandbox_id=record.id):
            return await self.suspend(record, "hibernate")

    async def resume(self, principal: Principal, sandbox_id: str) -> SandboxRecord:
        record = self.get(principal, sandbox_id)
        self.touch(record.id)
        with self._audit.recording(principal, "sandbox.resume", sandbox_id=record.id, args={"from": record.state}):
            return await self.wake(record)

    async def suspend(self, record: SandboxRecord, how: str) -> SandboxRecord:
        """Pause (processes frozen, memory kept) or hibernate (filesystem saved, container removed).

        A sandbox already asleep at least that deep is left as it is.
        """
        async with self.lock(record.id):
            record = self._store.get_sandbox(record.id) or record
            if how == "pause":
                if record.state == "paused":
                    return record
                if record.state != "running" or not record.container_id:
                    raise Conflict(f"sandbox {record.id} is {record.state}; only a running sandbox can be paused")
                await self._runtime.pause(record.container_id)
                return self._store.update_sandbox(record.id, state="paused")
            if record.state == "hibernated":
                return record
            if record.state not in ("running", "paused", "stopped") or not record.container_id:
                raise Conflict(f"sandbox {record.id} is {record.state} and cannot be hibernated now")
            return await self._hibernate(record)

    async def _hibernate(self, record: SandboxRecord) -> SandboxRecord:
        # Order matters for a crash at any point: the passing state first (reconciliation
        # returns a sandbox whose container still exists to that container), then the image,
        # then one write that points the record at the image, and only then the removal.
        assert record.container_id is not None
        container_id, before = record.container_id, record.state
        image = images.hibernation_image(record.id)
        underneath = await self._runtime.inspect_image(images.rootfs_image(record))
        env = self.commit_env(record, underneath.env if underneath else ())
        self._store.update_sandbox(record.id, state="hibernating")
        try:
            await self._runtime.commit(container_id, image, labels=images.image_labels(hibernation_of=record.id), env=env)
        except BaseException:
            self._store.update_sandbox(record.id, state=before)
            raise
        record = self._store.update_sandbox(
            record.id, state="hibernated", container_id=None, spec={**record.spec, "rootfs_image": image}
        )
        await self.forget_agent(record.id)
        if self._egress is not None:
            self._egress.detach(record.id)
        await self._runtime.remove(container_id)
        return record

    async def _wake_from_image(self, record: SandboxRecord) -> SandboxRecord:
        """A new container from the hibernated filesystem; on any failure the sandbox stays asleep, intact."""
        image = images.rootfs_image(record)
        if not await self._runtime.image_exists(image):
            error = f"its filesystem image {image} was removed from the engine"
            self._store.update_sandbox(record.id, state="failed", error=error)
            raise SandboxUnavailable(f"sandbox {record.id} cannot wake: {error}; delete it and create a new one")
        record = self._store.update_sandbox(record.id, state="waking")
        if self._egress is not None and image != images.hibernation_image(record.id):
            # Restored from a snapshot: files there may hold placeholders of another sandbox or time.
            self._egress.renew_placeholders(record.id)
        container_id: str | None = None
        try:
            container_id = await self._runtime.create(self.container_spec(record, image))
            record = self._store.update_sandbox(record.id, container_id=container_id)
            await self.wait_ready(record)
            await self._egress_ready(record)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.forget_agent(record.id)
                if self._egress is not None:
                    self._egress.detach(record.id)
                if container_id:
                    await self._runtime.remove(container_id)
            self._store.update_sandbox(record.id, state="hibernated", container_id=None)
            raise
        record = self._store.update_sandbox(record.id, state="running", error=None)
        await self.run_on_wake(record)
        return record

    async def run_on_wake(self, record: SandboxRecord) -> None:
        """Start the sandbox's declared start command in the background: processes do not survive sleep."""
        command = record.spec.get("on_wake")
        if not command:
            return
        try:
            await self._agent(record.id).start_process(["bash", "-c", command], name="on_wake")
        except SandboxdError as exc:
            # The sandbox is up; a failing start command is the sandbox's business, not the caller's.
            _log.warning("sandbox %s: on_wake command did not start: %s", record.id, exc.message)
