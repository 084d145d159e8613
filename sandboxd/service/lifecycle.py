"""Lifecycle policy: idle sandboxes go to sleep, sandboxes past their lifetime go away.

Each sandbox may set an idle timeout with an action (pause, hibernate or delete)
and a maximum lifetime; what it leaves unset comes from its tenant's defaults,
then from the server's settings (``SANDBOXD_IDLE_TIMEOUT_S`` and friends; ``SERVER_POLICY``
holds their defaults). Those hibernate a sandbox idle for 30 minutes and never delete
anything: hibernation keeps every
byte and the sandbox wakes at its next call, while a deletion must be asked for.

Idle means no API call on the sandbox (one still running counts as busy for as
long as it runs), no egress traffic, no keep-alive for the timeout, and no work:
before an idle action the reaper looks at the sandbox's CPU time twice, a pass
apart, and a sandbox whose processes used more than ``WORKING_CPU_SHARE`` of a
core meanwhile (a build, a training run started in the background) counts as
used, so a long-running job is never frozen or stopped for want of API calls. The
reaper is one background task that looks every ``interval_s``; ``decide`` is the
pure rule it applies, and every action it takes is audited with its reason.

On start, ``reconcile`` puts right what a crash interrupted: a sandbox caught
hibernating goes back to its container (still there, untouched), one caught
waking goes back to sleep on its image, and a restore is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sandboxd.errors import Conflict, Forbidden, SandboxdError
from sandboxd.ids import parse_id
from sandboxd.models import LifecycleDefaultsIn, LifecycleUpdate
from sandboxd.runtime.base import Runtime
from sandboxd.service.audit import AuditLog
from sandboxd.service.sandboxes import SandboxService
from sandboxd.service.snapshots import SnapshotService
from sandboxd.service.tenants import Principal
from sandboxd.store import LifecycleDefaults, SandboxRecord, Store

log = logging.getLogger(__name__)

IDLE_ACTIONS: Final = ("pause", "hibernate", "delete")
_POLICY_FIELDS: Final = ("idle_timeout_s", "idle_action", "max_lifetime_s")
# States the idle timeout acts on; a paused sandbox may still go on to hibernate or be deleted.
_AWAKE: Final = frozenset({"running", "paused"})
# States in which a sandbox is settled enough for the reaper to act on it at all.
_SETTLED: Final = frozenset({"running", "paused", "stopped", "hibernated", "failed"})
_ACTIONS_AT_ONCE: Final = 4
# Share of one core a sandbox's processes must keep using to count as working.
WORKING_CPU_SHARE: Final = 0.05


@dataclass(frozen=True, slots=True)
class Policy:
    idle_timeout_s: int | None
    idle_action: str
    max_lifetime_s: int | None
    # Where each value came from: "sandbox", "tenant" or "server".
    source: dict[str, str] = field(default_factory=dict)


SERVER_POLICY: Final = Policy(idle_timeout_s=1800, idle_action="hibernate", max_lifetime_s=None)


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # pause, hibernate or delete
    reason: str


def effective_policy(spec: Mapping[str, Any], tenant: LifecycleDefaults | None, server: Policy) -> Policy:
    """The sandbox's own setting where it has one, else its tenant's, else the server's."""
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name in _POLICY_FIELDS:
        for origin, value in (
            ("sandbox", spec.get(name)),
            ("tenant", getattr(tenant, name) if tenant is not None else None),
            ("server", getattr(server, name)),
        ):
            if value is not None:
                values[name], source[name] = value, origin
                break
        else:
            values[name], source[name] = None, "server"
    return Policy(
        idle_timeout_s=values["idle_timeout_s"],
        idle_action=values["idle_action"] or "hibernate",
        max_lifetime_s=values["max_lifetime_s"],
        source=source,
    )


def decide(
    *, state: str, created_at: float, policy: Policy, now: float, last_active: float, busy: bool
) -> Decision | None:
    """What the reaper does to one sandbox now, and why; None to leave it be."""
    if state not in _SETTLED:
        return None
    if policy.max_lifetime_s is not None and now - created_at >= policy.max_lifetime_s:
        return Decision("delete", f"max lifetime {policy.max_lifetime_s}s reached (age {now - created_at:.0f}s)")
    if state not in _AWAKE or busy or policy.idle_timeout_s is None:
        return None
    idle = now - last_active
    if idle < policy.idle_timeout_s:
        return None
    if policy.idle_action == "pause" and state == "paused":
        return None
    return Decision(policy.idle_action, f"idle {idle:.0f}s (timeout {policy.idle_timeout_s}s)")


class Lifecycle:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        sandboxes: SandboxService,
        snapshots: SnapshotService,
        audit: AuditLog,
        *,
        instance_id: str,
        server_policy: Policy = SERVER_POLICY,
        interval_s: float = 1.0,
        gc_interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._sandboxes = sandboxes
        self._snapshots = snapshots
        self._audit = audit
        self._instance_id = instance_id
        self.server_policy = server_policy
        self._interval_s = interval_s
        self._gc_interval_s = gc_interval_s
        self._clock = clock
        # Per sandbox: (when, CPU seconds used by then), the first of the two looks before acting.
        self._cpu_looks: dict[str, tuple[float, float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # --- the API side: policy, keep-alive, tenant defaults --------------------------------------

    def policy_for(self, record: SandboxRecord) -> Policy:
        return effective_policy(record.spec, self._store.get_lifecycle_defaults(record.tenant_id), self.server_policy)

    def status(self, principal: Principal, sandbox_id: str) -> tuple[SandboxRecord, Policy, float, bool]:
        """The sandbox, its effective policy, how long it has been idle, and whether a call runs in it."""
        record = self._sandboxes.get(principal, sandbox_id)
        activity = self._sandboxes.activity
        idle = self._clock() - activity.last_active(record.id, not_before=record.created_at)
        return record, self.policy_for(record), max(idle, 0.0), activity.busy(record.id)

    def keepalive(self, principal: Principal, sandbox_id: str) -> SandboxRecord:
        """Restart the sandbox's idle clock without waking it; a sleeping sandbox stays asleep."""
        record = self._sandboxes.get(principal, sandbox_id)
        self._sandboxes.touch(record.id)
        self._audit.record(principal, "sandbox.keepalive", sandbox_id=record.id)
        return record

    async def update(self, principal: Principal, sandbox_id: str, req: LifecycleUpdate) -> SandboxRecord:
        record = self._sandboxes.get(principal, sandbox_id)
        changes = {name: getattr(req, name) for name in req.model_fields_set}
        with self._audit.recording(principal, "sandbox.lifecycle", sandbox_id=record.id, args=changes):
            async with self._sandboxes.lock(record.id):
                record = self._store.get_sandbox(record.id) or record
                record = self._store.update_sandbox(record.id, spec={**record.spec, **changes})
            self._sandboxes.touch(record.id)
            return record

    def tenant_defaults(self, principal: Principal, tenant_id: str | None = None) -> LifecycleDefaults:
        tenant_id = self._tenant(principal, tenant_id)
        found = self._store.get_lifecycle_defaults(tenant_id)
        return found or LifecycleDefaults(tenant_id, None, None, None, 0.0)

    def set_tenant_defaults(self, principal: Principal, tenant_id: str, req: LifecycleDefaultsIn) -> LifecycleDefaults:
        if not principal.admin:
            raise Forbidden("setting a tenant's lifecycle defaults needs an admin key")
        tenant_id = parse_id("tnt", tenant_id, "tenant id")
        defaults = LifecycleDefaults(tenant_id, req.idle_timeout_s, req.idle_action, req.max_lifetime_s, self._clock())
        with self._audit.recording(principal, "tenant.lifecycle", args=req.model_dump(), tenant_id=tenant_id):
            self._store.set_lifecycle_defaults(defaults)
        return defaults

    def _tenant(self, principal: Principal, tenant_id: str | None) -> str:
        if tenant_id is None or tenant_id == principal.tenant_id:
            return principal.tenant_id
        if not principal.admin:
            raise Forbidden("only an admin key can read another tenant's defaults")
        return parse_id("tnt", tenant_id, "tenant id")

    # --- the reaper ----------------------------------------------------------------------------

    async def run_once(self) -> list[tuple[str, Decision]]:
        """One pass over every sandbox: decide, then act (a few at a time). Returns what it did."""
        tenants = {d.tenant_id: d for d in self._store.list_lifecycle_defaults()}
        due: list[tuple[SandboxRecord, Decision]] = []
        records = self._store.list_sandboxes()
        for gone in self._cpu_looks.keys() - {r.id for r in records}:
            del self._cpu_looks[gone]
        for record in records:
            decision = self._decide(record, tenants.get(record.tenant_id))
            if decision is not None:
                due.append((record, decision))
        gate = asyncio.Semaphore(_ACTIONS_AT_ONCE)

        async def act(record: SandboxRecord, decision: Decision) -> tuple[str, Decision] | None:
            async with gate:
                return await self._act(record, decision)

        done = await asyncio.gather(*(act(r, d) for r, d in due))
        return [item for item in done if item is not None]

    def _decide(self, record: SandboxRecord, tenant: LifecycleDefaults | None) -> Decision | None:
        activity = self._sandboxes.activity
        return decide(
            state=record.state,
            created_at=record.created_at,
            policy=effective_policy(record.spec, tenant, self.server_policy),
            now=self._clock(),
            last_active=activity.last_active(record.id, not_before=record.created_at),
            busy=activity.busy(record.id),
        )

    async def _act(self, record: SandboxRecord, decision: Decision) -> tuple[str, Decision] | None:
        # Others may have queued before this one: look again, with what is true now.
        fresh = self._store.get_sandbox(record.id)
        if fresh is None:
            return None
        again = self._decide(fresh, self._store.get_lifecycle_defaults(fresh.tenant_id))
        if again is None or again.action != decision.action:
            return None
        record, decision = fresh, again
        if decision.reason.startswith("idle") and record.state == "running":
            working = await self._working(record)
            if working is None:
                return None  # looked once; act (or not) after the second look
            if working:
                self._sandboxes.touch(record.id)
                return None
        self._cpu_looks.pop(record.id, None)
        args = {"reason": decision.reason, "by": "lifecycle policy"}
        try:
            with self._audit.recording(
                None, f"sandbox.{decision.action}", sandbox_id=record.id, args=args, tenant_id=record.tenant_id
            ):
                if decision.action == "delete":
                    await self._sandboxes.remove(record)
                else:
                    await self._sandboxes.suspend(record, decision.action)
        except Conflict:
            return None  # it changed state meanwhile; the next pass looks again
        except SandboxdError as exc:
            log.warning("lifecycle: %s of sandbox %s failed: %s", decision.action, record.id, exc.message)
            return None
        log.info("lifecycle: %s sandbox %s: %s", decision.action, record.id, decision.reason)
        return record.id, decision

    async def _working(self, record: SandboxRecord) -> bool | None:
        """Whether the sandbox's processes kept a CPU busy since the last look; None after a first look."""
        assert record.container_id is not None
        try:
            used = await self._runtime.cpu_seconds(record.container_id)
        except SandboxdError:
            used = None
        if used is None:
            return False  # the engine cannot say: API calls and traffic alone decide
        now = self._clock()
        previous = self._cpu_looks.get(record.id)
        self._cpu_looks[record.id] = (now, used)
        # A look older than a few passes says nothing about now: look again.
        if previous is None or now - previous[0] > 5 * self._interval_s + 1 or now <= previous[0]:
            return None
        return (used - previous[1]) / (now - previous[0]) > WORKING_CPU_SHARE

    async def _loop(self) -> None:
        next_gc = self._clock() + self._gc_interval_s
        while not self._stopping.is_set():
            try:
                await self.run_once()
                if self._clock() >= next_gc:
                    next_gc = self._clock() + self._gc_interval_s
                    await self._snapshots.collect_garbage(self._instance_id)
            except Exception:  # the reaper must outlive any one bad pass
                log.exception("lifecycle pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)

    # --- start and stop ------------------------------------------------------------------------

    async def start(self) -> dict[str, int]:
        """Put right what a crash interrupted, tidy images, then start the reaper."""
        counts = await self.reconcile()
        counts.update(await self._snapshots.reconcile())
        with contextlib.suppress(SandboxdError):
            counts["images_removed"] = await self._snapshots.collect_garbage(self._instance_id)
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="sandboxd-lifecycle")
        return counts

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is None:
            return
        try:
            # Let an action under way finish (a hibernation is best not cut in half), within reason.
            await asyncio.wait_for(asyncio.shield(self._task), 10)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def reconcile(self) -> dict[str, int]:
        counts = {"hibernations_undone": 0, "wakes_undone": 0, "restores_finished": 0}
        for record in self._store.list_sandboxes():
            if record.state == "hibernating":
                info = await self._runtime.inspect(record.container_id) if record.container_id else None
                if info is None:
                    self._store.update_sandbox(
                        record.id, state="failed", error="its container disappeared while it was being hibernated"
                    )
                    continue
                state = {"running": "running", "paused": "paused"}.get(info.status, "stopped")
                self._store.update_sandbox(record.id, state=state)
                counts["hibernations_undone"] += 1
            elif record.state == "waking":
                if record.container_id:
                    await self._runtime.remove(record.container_id)
                self._store.update_sandbox(record.id, state="hibernated", container_id=None)
                counts["wakes_undone"] += 1
            elif record.state == "restoring":
                await self._snapshots.finish_restore(record)
                counts["restores_finished"] += 1
        return counts
