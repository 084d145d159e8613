"""Tools for saving and going back: snapshots, forks, rollback, hibernation, and what changed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from sandboxd.mcp.sandbox_tools import Deleted, SandboxId, SandboxInfo, sandbox_info
from sandboxd.mcp.toolset import ToolSet, caller_of
from sandboxd.models import CreateSnapshot, FileChange, ForkRequest
from sandboxd.store import SnapshotRecord

tools = ToolSet()

# A model pays for every byte in context: a few hundred changed paths and 32 KiB of diff are plenty
# to see what happened; the rest is flagged, and narrowing 'path' shows it.
DEFAULT_MAX_CHANGES: Final = 200
MAX_DIFF_CHARS: Final = 32 * 1024

SnapshotId = Annotated[
    str,
    Field(description="The snapshot's id (snp_ and 20 characters), as snapshot_sandbox or list_snapshots gave it."),
]


class SnapshotInfo(BaseModel):
    id: str = Field(description="Pass this as snapshot_id to fork_snapshot, restore_snapshot or show_changes.")
    name: str
    sandbox_id: str | None = Field(description="The sandbox it was taken of; null for an imported snapshot.")
    labels: dict[str, str]
    size_bytes: int | None = Field(description="Disk space it takes on top of what it is built on.")
    created_at: datetime


class SnapshotList(BaseModel):
    snapshots: list[SnapshotInfo]


class Forks(BaseModel):
    sandboxes: list[SandboxInfo] = Field(description="The new sandboxes; each 'id' works with every sandbox tool.")


class Changes(BaseModel):
    base: str = Field(description="The snapshot compared from.")
    target: str = Field(description="The sandbox (its files now) compared to.")
    path: str
    changes: list[FileChange]
    truncated: bool = Field(description="True when more files changed than are listed: narrow 'path' to see them.")
    diffs_truncated: bool = Field(
        description="True when some diffs were left out to keep the answer short: ask again with a narrower 'path'."
    )


def snapshot_info(record: SnapshotRecord) -> SnapshotInfo:
    return SnapshotInfo(
        id=record.id,
        name=record.name,
        sandbox_id=record.sandbox_id,
        labels=record.labels,
        size_bytes=record.size_bytes,
        created_at=datetime.fromtimestamp(record.created_at, UTC),
    )


def _within_budget(changes: list[FileChange], budget: int) -> tuple[list[FileChange], bool]:
    """Diffs kept in order while they fit in ``budget`` characters; the rest listed without theirs."""
    kept: list[FileChange] = []
    dropped = False
    for change in changes:
        if change.diff is not None:
            if len(change.diff) <= budget:
                budget -= len(change.diff)
            else:
                change = change.model_copy(update={"diff": None})
                dropped = True
        kept.append(change)
    return kept, dropped


@tools.tool()
async def snapshot_sandbox(
    ctx: Context,
    sandbox_id: SandboxId,
    name: Annotated[
        str | None, Field(max_length=128, description="What state this is, e.g. 'tests pass, before refactor'.")
    ] = None,
    labels: Annotated[dict[str, str] | None, Field(description="Tags to find it by later.")] = None,
) -> SnapshotInfo:
    """Save a sandbox's whole filesystem as a snapshot, to go back to or to copy later.

    Take one before a risky change (a big refactor, an upgrade, deleting files): if it goes
    wrong, restore_snapshot brings every file back. fork_snapshot starts new sandboxes from
    it, to try several approaches side by side. Files are saved, running processes are not.
    The sandbox keeps running; it is frozen only for the moment of the copy (about a second).
    """
    caller = caller_of(ctx)
    request = CreateSnapshot(name=name or "", labels=labels or {})
    return snapshot_info(await caller.daemon.snapshots.create(caller.principal, sandbox_id, request))


@tools.tool(read_only=True, idempotent=True)
async def list_snapshots(
    ctx: Context,
    sandbox_id: Annotated[
        str | None, Field(description="Only snapshots of this sandbox. Leave out to list all of yours.")
    ] = None,
) -> SnapshotList:
    """List your snapshots, oldest first, with their ids, names and the sandbox each was taken of.

    Use it to find the snapshot_id for restore_snapshot, fork_snapshot or show_changes.
    """
    caller = caller_of(ctx)
    records = caller.daemon.snapshots.list(caller.principal, sandbox_id=sandbox_id)
    return SnapshotList(snapshots=[snapshot_info(r) for r in records if r.state == "ready"])


@tools.tool()
async def fork_snapshot(
    ctx: Context,
    snapshot_id: SnapshotId,
    count: Annotated[int, Field(ge=1, le=16, description="How many sandboxes to start from it (1-16).")] = 1,
    labels: Annotated[
        dict[str, str] | None, Field(description='Tags for the new sandboxes, e.g. {"attempt": "2"}.')
    ] = None,
) -> Forks:
    """Start new sandboxes whose files are exact copies of a snapshot.

    Use it to try different approaches in parallel from the same starting point, or to hand a
    copy of your environment to another task. Each fork is an independent sandbox with its own
    id (changes in one do not affect the others or the original); it has the same limits as the
    sandbox the snapshot was taken of. Delete forks with delete_sandbox when done.
    """
    caller = caller_of(ctx)
    request = ForkRequest(count=count, labels=labels or {})
    records = await caller.daemon.snapshots.fork(caller.principal, snapshot_id, request)
    return Forks(sandboxes=[sandbox_info(r) for r in records])


@tools.tool(destructive=True)
async def restore_snapshot(ctx: Context, sandbox_id: SandboxId, snapshot_id: SnapshotId) -> SandboxInfo:
    """Roll a sandbox back to a snapshot: every file becomes exactly as it was when the snapshot was taken.

    Use it to undo changes that went wrong. The sandbox keeps its id. Everything written since
    the snapshot is lost (take another snapshot first if you may want it back), and background
    processes are stopped: start them again with start_process. show_changes tells you what
    would be undone.
    """
    caller = caller_of(ctx)
    return sandbox_info(await caller.daemon.snapshots.restore(caller.principal, sandbox_id, snapshot_id))


@tools.tool(idempotent=True)
async def hibernate_sandbox(ctx: Context, sandbox_id: SandboxId) -> SandboxInfo:
    """Put a sandbox to sleep on disk: it uses no memory or CPU until it is used again.

    Use it when you will not need a sandbox for a while but want to keep its files. Any later
    call on it (run_command, read_file, ...) wakes it automatically in a few seconds. Files
    survive; running processes do not, so start them again after it wakes.
    """
    caller = caller_of(ctx)
    return sandbox_info(await caller.daemon.sandboxes.hibernate(caller.principal, sandbox_id))


@tools.tool(read_only=True, idempotent=True)
async def show_changes(
    ctx: Context,
    sandbox_id: SandboxId,
    since: Annotated[
        str | None,
        Field(description="The snapshot_id to compare with. Leave out for the latest snapshot of this sandbox."),
    ] = None,
    path: Annotated[str, Field(description="Only look under this directory, e.g. /workspace.")] = "/workspace",
    diff: Annotated[bool, Field(description="Also return a unified diff of each changed text file.")] = False,
    max_changes: Annotated[
        int, Field(ge=1, le=2000, description=f"List at most this many files. Default {DEFAULT_MAX_CHANGES}.")
    ] = DEFAULT_MAX_CHANGES,
) -> Changes:
    """Show which files were added, modified or deleted in a sandbox since a snapshot.

    Use it to review your own work before reporting it, or to see what restore_snapshot would
    undo. With diff=true, each changed text file comes with a unified diff. Needs a snapshot
    to compare with: take one with snapshot_sandbox before you start changing things.
    """
    caller = caller_of(ctx)
    result = await caller.daemon.changes.since(caller.principal, sandbox_id, since, path=path, diff=diff)
    listed = result.changes[:max_changes]
    listed, diffs_dropped = _within_budget(listed, MAX_DIFF_CHARS)
    return Changes(
        base=result.base,
        target=result.target,
        path=result.path,
        changes=listed,
        truncated=result.truncated or len(result.changes) > max_changes,
        diffs_truncated=diffs_dropped,
    )


@tools.tool(destructive=True, idempotent=True)
async def delete_snapshot(ctx: Context, snapshot_id: SnapshotId) -> Deleted:
    """Delete a snapshot you no longer need, to free its disk space.

    Refused while sandboxes forked or restored from it still exist (the error names them).
    There is no undo.
    """
    caller = caller_of(ctx)
    await caller.daemon.snapshots.delete(caller.principal, snapshot_id)
    return Deleted(deleted=snapshot_id)
