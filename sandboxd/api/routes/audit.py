"""The audit trail: query it, and check that nobody edited it."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query

from sandboxd.api.deps import AdminPrincipal, CurrentPrincipal, DaemonDep

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("")
async def query_audit(
    principal: CurrentPrincipal,
    daemon: DaemonDep,
    sandbox_id: str | None = None,
    action: str | None = None,
    since: Annotated[float | None, Query(description="Unix time")] = None,
    until: Annotated[float | None, Query(description="Unix time")] = None,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    records = daemon.audit.query(
        principal, sandbox_id=sandbox_id, action=action, since=since, until=until, limit=limit, after_seq=after_seq
    )
    return {"records": [dataclasses.asdict(r) for r in records]}


@router.get("/verify")
async def verify_audit(principal: AdminPrincipal, daemon: DaemonDep) -> Any:
    return dataclasses.asdict(daemon.audit.verify())
