"""Snapshots, restore and forks; suspension and lifecycle; export, import and changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from sandboxd.api.deps import CurrentPrincipal, DaemonDep
from sandboxd.api.routes.sandboxes import parse_label_filter, sandbox_out
from sandboxd.models import (
    ChangesOut,
    CreateSnapshot,
    ForkOut,
    ForkRequest,
    LifecycleDefaultsIn,
    LifecycleDefaultsOut,
    LifecycleOut,
    LifecycleUpdate,
    RestoreRequest,
    SandboxOut,
    SnapshotList,
    SnapshotOut,
)
from sandboxd.store import LifecycleDefaults, SnapshotRecord

router = APIRouter(tags=["snapshots"])

# Upload endpoints whose bodies are streamed to disk and capped by the service, not the JSON limit.
STREAMED_SUFFIXES = ("/snapshots/import",)


def snapshot_out(record: SnapshotRecord) -> SnapshotOut:
    return SnapshotOut(
        id=record.id,
        name=record.name,
        state=record.state,  # type: ignore[arg-type]
        labels=record.labels,
        sandbox_id=record.sandbox_id,
        parent_id=record.parent_id,
        size_bytes=record.size_bytes,
        total_bytes=record.total_bytes,
        image=record.image,
        created_at=datetime.fromtimestamp(record.created_at, UTC),
    )


def defaults_out(defaults: LifecycleDefaults) -> LifecycleDefaultsOut:
    return LifecycleDefaultsOut(
        tenant_id=defaults.tenant_id,
        idle_timeout_s=defaults.idle_timeout_s,
        idle_action=defaults.idle_action,  # type: ignore[arg-type]
        max_lifetime_s=defaults.max_lifetime_s,
    )


Labels = Annotated[list[str], Query(description="key=value; repeat to require several")]


# --- snapshots -------------------------------------------------------------------------------


@router.post("/v1/sandboxes/{sandbox_id}/snapshots", status_code=status.HTTP_201_CREATED)
async def create_snapshot(
    sandbox_id: str, body: CreateSnapshot, principal: CurrentPrincipal, daemon: DaemonDep
) -> SnapshotOut:
    return snapshot_out(await daemon.snapshots.create(principal, sandbox_id, body))


@router.get("/v1/sandboxes/{sandbox_id}/snapshots")
async def list_sandbox_snapshots(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> SnapshotList:
    daemon.sandboxes.get(principal, sandbox_id)
    return SnapshotList(snapshots=[snapshot_out(s) for s in daemon.snapshots.list(principal, sandbox_id=sandbox_id)])


@router.get("/v1/snapshots")
async def list_snapshots(
    principal: CurrentPrincipal, daemon: DaemonDep, sandbox_id: str | None = None, label: Labels = []  # noqa: B006
) -> SnapshotList:
    records = daemon.snapshots.list(principal, sandbox_id=sandbox_id, labels=parse_label_filter(label))
    return SnapshotList(snapshots=[snapshot_out(s) for s in records])


@router.get("/v1/snapshots/{snapshot_id}")
async def get_snapshot(snapshot_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> SnapshotOut:
    return snapshot_out(daemon.snapshots.get(principal, snapshot_id))


@router.delete("/v1/snapshots/{snapshot_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_snapshot(
    snapshot_id: str,
    principal: CurrentPrincipal,
    daemon: DaemonDep,
    force: Annotated[bool, Query(description="Delete even while sandboxes or snapshots depend on it.")] = False,
) -> Response:
    await daemon.snapshots.delete(principal, snapshot_id, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/v1/sandboxes/{sandbox_id}/restore")
async def restore_sandbox(
    sandbox_id: str, body: RestoreRequest, principal: CurrentPrincipal, daemon: DaemonDep
) -> SandboxOut:
    return sandbox_out(await daemon.snapshots.restore(principal, sandbox_id, body.snapshot_id))


@router.post("/v1/snapshots/{snapshot_id}/fork", status_code=status.HTTP_201_CREATED)
async def fork_snapshot(snapshot_id: str, body: ForkRequest, principal: CurrentPrincipal, daemon: DaemonDep) -> ForkOut:
    return ForkOut(sandboxes=[sandbox_out(r) for r in await daemon.snapshots.fork(principal, snapshot_id, body)])


# --- export and import -----------------------------------------------------------------------


@router.get(
    "/v1/snapshots/{snapshot_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-tar": {}}, "description": "The snapshot as one tar file."}},
)
async def export_snapshot(snapshot_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> StreamingResponse:
    export = await daemon.portability.export(principal, snapshot_id)
    return StreamingResponse(
        export.chunks,
        media_type="application/x-tar",
        headers={
            "Content-Length": str(export.size),
            "Content-Disposition": f'attachment; filename="{export.filename}"',
        },
    )


@router.post(
    "/v1/snapshots/import",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": {"content": {"application/x-tar": {}}, "required": True}},
)
async def import_snapshot(request: Request, principal: CurrentPrincipal, daemon: DaemonDep) -> SnapshotOut:
    record = await daemon.portability.import_(
        principal, request.stream(), max_bytes=daemon.settings.max_upload_bytes
    )
    return snapshot_out(record)


# --- what changed ----------------------------------------------------------------------------


@router.get("/v1/sandboxes/{sandbox_id}/changes")
async def sandbox_changes(
    sandbox_id: str,
    principal: CurrentPrincipal,
    daemon: DaemonDep,
    since: Annotated[str | None, Query(description="A snapshot id; default: the latest taken of this sandbox.")] = None,
    path: Annotated[str, Query(description="Compare under this directory only.")] = "/",
    diff: Annotated[bool, Query(description="Add a unified diff for each changed text file.")] = False,
) -> ChangesOut:
    return await daemon.changes.since(principal, sandbox_id, since, path=path, diff=diff)


@router.get("/v1/snapshots/{snapshot_id}/changes")
async def snapshot_changes(
    snapshot_id: str,
    principal: CurrentPrincipal,
    daemon: DaemonDep,
    to: Annotated[str, Query(description="The snapshot to compare with.")],
    path: Annotated[str, Query(description="Compare under this directory only.")] = "/",
    diff: Annotated[bool, Query(description="Add a unified diff for each changed text file.")] = False,
) -> ChangesOut:
    return await daemon.changes.between(principal, snapshot_id, to, path=path, diff=diff)


# --- suspension and lifecycle ----------------------------------------------------------------


@router.post("/v1/sandboxes/{sandbox_id}/pause")
async def pause_sandbox(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> SandboxOut:
    return sandbox_out(await daemon.sandboxes.pause(principal, sandbox_id))


@router.post("/v1/sandboxes/{sandbox_id}/resume")
async def resume_sandbox(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> SandboxOut:
    return sandbox_out(await daemon.sandboxes.resume(principal, sandbox_id))


@router.post("/v1/sandboxes/{sandbox_id}/hibernate")
async def hibernate_sandbox(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> SandboxOut:
    return sandbox_out(await daemon.sandboxes.hibernate(principal, sandbox_id))


def _lifecycle_out(daemon: DaemonDep, principal: CurrentPrincipal, sandbox_id: str) -> LifecycleOut:
    record, policy, idle_for, busy = daemon.lifecycle.status(principal, sandbox_id)
    return LifecycleOut(
        sandbox_id=record.id,
        state=record.state,  # type: ignore[arg-type]
        idle_timeout_s=policy.idle_timeout_s,
        idle_action=policy.idle_action,  # type: ignore[arg-type]
        max_lifetime_s=policy.max_lifetime_s,
        on_wake=record.spec.get("on_wake"),
        idle_for_s=round(idle_for, 3),
        busy=busy,
        source=policy.source,
    )


@router.post("/v1/sandboxes/{sandbox_id}/keepalive")
async def keepalive(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> LifecycleOut:
    daemon.lifecycle.keepalive(principal, sandbox_id)
    return _lifecycle_out(daemon, principal, sandbox_id)


@router.get("/v1/sandboxes/{sandbox_id}/lifecycle")
async def get_lifecycle(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> LifecycleOut:
    return _lifecycle_out(daemon, principal, sandbox_id)


@router.patch("/v1/sandboxes/{sandbox_id}/lifecycle")
async def update_lifecycle(
    sandbox_id: str, body: LifecycleUpdate, principal: CurrentPrincipal, daemon: DaemonDep
) -> LifecycleOut:
    await daemon.lifecycle.update(principal, sandbox_id, body)
    return _lifecycle_out(daemon, principal, sandbox_id)


@router.get("/v1/lifecycle/defaults")
async def get_lifecycle_defaults(
    principal: CurrentPrincipal, daemon: DaemonDep, tenant_id: str | None = None
) -> LifecycleDefaultsOut:
    return defaults_out(daemon.lifecycle.tenant_defaults(principal, tenant_id))


@router.put("/v1/tenants/{tenant_id}/lifecycle")
async def set_lifecycle_defaults(
    tenant_id: str, body: LifecycleDefaultsIn, principal: CurrentPrincipal, daemon: DaemonDep
) -> LifecycleDefaultsOut:
    return defaults_out(daemon.lifecycle.set_tenant_defaults(principal, tenant_id, body))
