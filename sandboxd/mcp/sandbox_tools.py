"""Tools for the sandboxes themselves: create, list, delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from sandboxd.mcp.toolset import ToolSet, caller_of
from sandboxd.models import CreateSandbox, SandboxState
from sandboxd.store import SandboxRecord

tools = ToolSet()

SandboxId = Annotated[
    str,
    Field(description="The sandbox's id (sbx_ and 20 characters), as create_sandbox or list_sandboxes gave it."),
]


class SandboxInfo(BaseModel):
    id: str = Field(description="Pass this as sandbox_id to the other tools.")
    state: SandboxState
    image: str
    labels: dict[str, str]
    cpus: float
    memory_mb: int
    created_at: datetime
    error: str | None = Field(None, description="Why the sandbox failed, when state is 'failed'.")


class SandboxList(BaseModel):
    sandboxes: list[SandboxInfo]


class Deleted(BaseModel):
    deleted: str


def sandbox_info(record: SandboxRecord) -> SandboxInfo:
    limits = record.spec.get("limits", {})
    return SandboxInfo(
        id=record.id,
        state=record.state,  # type: ignore[arg-type]
        image=record.image,
        labels=record.labels,
        cpus=limits.get("cpus", 0.0),
        memory_mb=limits.get("memory_mb", 0),
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        error=record.error,
    )


@tools.tool()
async def create_sandbox(
    ctx: Context,
    labels: Annotated[
        dict[str, str] | None,
        Field(description='Tags to find the sandbox by later, e.g. {"task": "fix-bug-123"}. Keys: a-z 0-9 . _ / -.'),
    ] = None,
    env: Annotated[
        dict[str, str] | None,
        Field(description="Environment variables set for every command in the sandbox."),
    ] = None,
    image: Annotated[
        str | None,
        Field(description="A container image present on the host. Leave out for the default sandbox image."),
    ] = None,
    cpus: Annotated[float | None, Field(gt=0, description="CPU cores, e.g. 2. Default: the server's default.")] = None,
    memory_mb: Annotated[int | None, Field(gt=0, description="Memory limit in MiB. Default: the server's.")] = None,
    idle_timeout_s: Annotated[
        int | None,
        Field(gt=0, description="Suspend the sandbox after this many idle seconds; it wakes on the next call."),
    ] = None,
) -> SandboxInfo:
    """Create a new sandbox: a persistent Linux computer (Debian, bash, Python 3) of your own.

    Use it when you need to run code, install packages or keep files. The sandbox keeps
    its files and background processes between calls until delete_sandbox; reuse one
    (list_sandboxes) rather than creating one per command. Commands run as the
    unprivileged user 'sandbox' in /workspace; the internet is reachable only for hosts
    a human has allowed. Takes about a second. Returns the new sandbox, whose 'id' the
    other tools take as sandbox_id.
    """
    caller = caller_of(ctx)
    request = CreateSandbox(
        image=image,
        env=env or {},
        labels=labels or {},
        cpus=cpus,
        memory_mb=memory_mb,
        idle_timeout_s=idle_timeout_s,
    )
    return sandbox_info(await caller.daemon.sandboxes.create(caller.principal, request))


@tools.tool(read_only=True, idempotent=True)
async def list_sandboxes(
    ctx: Context,
    state: Annotated[SandboxState | None, Field(description="Only sandboxes in this state.")] = None,
    labels: Annotated[
        dict[str, str] | None,
        Field(description="Only sandboxes carrying all of these labels (exact values)."),
    ] = None,
) -> SandboxList:
    """List your sandboxes, oldest first, with their ids, states and labels.

    Use it to find a sandbox you created earlier (by its labels) before creating another,
    or when a tool says a sandbox does not exist. Shows only the sandboxes of your own
    API key's tenant.
    """
    caller = caller_of(ctx)
    records = caller.daemon.sandboxes.list(caller.principal, state=state, labels=labels)
    return SandboxList(sandboxes=[sandbox_info(r) for r in records])


@tools.tool(destructive=True, idempotent=True)
async def delete_sandbox(ctx: Context, sandbox_id: SandboxId) -> Deleted:
    """Delete a sandbox for good: its container, files and processes are gone afterwards.

    Use it when the work in the sandbox is finished and nothing in it is needed any more.
    There is no undo.
    """
    caller = caller_of(ctx)
    await caller.daemon.sandboxes.delete(caller.principal, sandbox_id)
    return Deleted(deleted=sandbox_id)
