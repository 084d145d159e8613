"""Sandbox resources: create, get, list, delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from sandboxd.api.deps import CurrentPrincipal, DaemonDep
from sandboxd.errors import InvalidRequest
from sandboxd.models import CreateSandbox, LimitsOut, SandboxList, SandboxOut, SandboxState
from sandboxd.store import SandboxRecord

router = APIRouter(prefix="/v1/sandboxes", tags=["sandboxes"])


def sandbox_out(record: SandboxRecord) -> SandboxOut:
    spec = record.spec
    return SandboxOut(
        id=record.id,
        state=record.state,  # type: ignore[arg-type]
        image=record.image,
        labels=record.labels,
        limits=LimitsOut(**spec["limits"]),
        env=spec.get("env", {}),
        idle_timeout_s=spec.get("idle_timeout_s"),
        max_lifetime_s=spec.get("max_lifetime_s"),
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        updated_at=datetime.fromtimestamp(record.updated_at, UTC),
        error=record.error,
    )


def parse_label_filter(values: list[str]) -> dict[str, str]:
    labels = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"label filter {item!r} must look like key=value")
        labels[key] = value
    return labels


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_sandbox(body: CreateSandbox, principal: CurrentPrincipal, daemon: DaemonDep) -> SandboxOut:
    return sandbox_out(await daemon.sandboxes.create(principal, body))


@router.get("")
async def list_sandboxes(
    principal: CurrentPrincipal,
    daemon: DaemonDep,
    state: SandboxState | None = None,
    label: Annotated[list[str], Query(description="key=value; repeat to require several")] = [],  # noqa: B006
) -> SandboxList:
    records = daemon.sandboxes.list(principal, state=state, labels=parse_label_filter(label))
    return SandboxList(sandboxes=[sandbox_out(r) for r in records])


@router.get("/{sandbox_id}")
async def get_sandbox(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> SandboxOut:
    return sandbox_out(daemon.sandboxes.get(principal, sandbox_id))


@router.delete("/{sandbox_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_sandbox(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> Response:
    await daemon.sandboxes.delete(principal, sandbox_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
