"""Egress: a sandbox's policy and log, and the tenant's default policy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from sandboxd.api.deps import CurrentPrincipal, DaemonDep
from sandboxd.models import EgressLogEntry, EgressLogOut, EgressPolicyIn, EgressPolicyOut
from sandboxd.service.egress import MAX_LOG_LIMIT, PolicyView
from sandboxd.store import EgressLogRecord

router = APIRouter(tags=["egress"])


def policy_out(view: PolicyView) -> EgressPolicyOut:
    return EgressPolicyOut(tenant_id=view.tenant_id, sandbox_id=view.sandbox_id, rules=view.rules, source=view.source)


def log_entry(record: EgressLogRecord) -> EgressLogEntry:
    assert record.id is not None
    return EgressLogEntry(
        id=record.id,
        ts=datetime.fromtimestamp(record.ts, UTC),
        method=record.method,
        scheme=record.scheme,
        host=record.host,
        port=record.port,
        path=record.path,
        status=record.status,
        bytes_out=record.bytes_out,
        bytes_in=record.bytes_in,
        duration_ms=record.duration_ms,
        secrets=record.secrets,
        blocked=record.blocked,
        reason=record.reason,
    )


@router.get("/v1/sandboxes/{sandbox_id}/egress/policy")
async def get_sandbox_policy(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> EgressPolicyOut:
    return policy_out(daemon.egress_policies.sandbox_policy(principal, sandbox_id))


@router.put("/v1/sandboxes/{sandbox_id}/egress/policy")
async def set_sandbox_policy(
    sandbox_id: str, body: EgressPolicyIn, principal: CurrentPrincipal, daemon: DaemonDep
) -> EgressPolicyOut:
    return policy_out(daemon.egress_policies.set_sandbox_policy(principal, sandbox_id, body.rule_dicts()))


@router.delete("/v1/sandboxes/{sandbox_id}/egress/policy")
async def clear_sandbox_policy(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> EgressPolicyOut:
    """Drop the sandbox's own rules: it follows the tenant default again."""
    return policy_out(daemon.egress_policies.set_sandbox_policy(principal, sandbox_id, None))


@router.get("/v1/sandboxes/{sandbox_id}/egress/log")
async def get_egress_log(
    sandbox_id: str,
    principal: CurrentPrincipal,
    daemon: DaemonDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_LIMIT)] = 100,
    before: Annotated[int | None, Query(ge=1, description="Only records older than this id (paging).")] = None,
    blocked: Annotated[bool | None, Query(description="Only refused (true) or only let through (false).")] = None,
    host: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[datetime | None, Query(description="Only records from this time on (ISO 8601).")] = None,
) -> EgressLogOut:
    records = daemon.egress_policies.log(
        principal,
        sandbox_id,
        limit=limit,
        before=before,
        blocked=blocked,
        host=host,
        since=since.timestamp() if since is not None else None,
    )
    sandbox = daemon.sandboxes.get(principal, sandbox_id)
    next_before = records[-1].id if len(records) == limit else None
    return EgressLogOut(sandbox_id=sandbox.id, records=[log_entry(r) for r in records], next_before=next_before)


@router.get("/v1/egress/policy")
async def get_tenant_policy(
    principal: CurrentPrincipal, daemon: DaemonDep, tenant_id: str | None = None
) -> EgressPolicyOut:
    return policy_out(daemon.egress_policies.tenant_policy(principal, tenant_id))


@router.put("/v1/egress/policy")
async def set_tenant_policy(
    body: EgressPolicyIn, principal: CurrentPrincipal, daemon: DaemonDep, tenant_id: str | None = None
) -> EgressPolicyOut:
    return policy_out(daemon.egress_policies.set_tenant_policy(principal, body.rule_dicts(), tenant_id))
