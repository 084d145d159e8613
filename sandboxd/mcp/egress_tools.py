"""Tools for a sandbox's way out: its egress policy, and the log of what it tried to reach."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from sandboxd.errors import InvalidRequest
from sandboxd.mcp.errors import egress_advice, looks_refused, refused_hosts
from sandboxd.mcp.sandbox_tools import SandboxId
from sandboxd.mcp.toolset import Caller, ToolSet, caller_of
from sandboxd.models import EgressPolicyIn, EgressRule
from sandboxd.service.egress import PolicyView
from sandboxd.store import EgressLogRecord

tools = ToolSet()

DEFAULT_LOG_RECORDS: Final = 20
# The proxy stamps records with this host's clock when a request arrives, so a command's own requests
# are those from its start on; the margin covers only the rounding of the stamp.
_LOG_SLACK_S: Final = 0.01
_LOG_RECORDS_READ: Final = 50
# How long to watch the log for a refusal the output hints at: ingestion runs every 0.25 s.
_LOG_WAIT_S: Final = 1.0
_LOG_POLL_S: Final = 0.05

Hosts = Annotated[
    list[str] | None,
    Field(
        description='Host names, optionally with a port: ["pypi.org", "files.pythonhosted.org:443"]. '
        '"*.example.com" covers every subdomain.'
    ),
]


class Policy(BaseModel):
    sandbox_id: str
    source: Literal["sandbox", "tenant", "default"] = Field(
        description="sandbox: rules of its own; tenant: the default for all your sandboxes; "
        "default: no rules anywhere, so every connection is refused."
    )
    rules: list[dict[str, Any]] = Field(
        description="allow/deny rules; nothing is allowed unless a rule allows it, and a matching deny wins."
    )


class LogEntry(BaseModel):
    time: datetime
    method: str | None
    host: str | None
    port: int | None
    path: str | None
    status: int | None = Field(description="The HTTP status the sandbox got; 403 when the proxy refused.")
    blocked: bool = Field(description="True when the egress policy refused the request.")
    reason: str | None = Field(description="Why it was refused (which rule, or that none allows the host).")
    secrets: list[str] = Field(description="Names of the stored secrets the proxy put into the request.")


class EgressLog(BaseModel):
    records: list[LogEntry] = Field(description="Newest first.")
    next_before: int | None = Field(description="Pass as 'before' to read older records; null when there are none.")


def policy_model(view: PolicyView) -> Policy:
    return Policy(sandbox_id=view.sandbox_id or "", source=view.source, rules=view.rules)


def log_entry(record: EgressLogRecord) -> LogEntry:
    return LogEntry(
        time=datetime.fromtimestamp(record.ts, UTC),
        method=record.method,
        host=record.host,
        port=record.port,
        path=record.path,
        status=record.status,
        blocked=record.blocked,
        reason=record.reason,
        secrets=record.secrets,
    )


def _host_rule(action: str, spec: str) -> dict[str, Any]:
    """"pypi.org", "pypi.org:443" or "[2001:db8::1]:443" as a rule; a bare IPv6 address has no port."""
    spec = spec.strip()
    if spec.startswith("[") and "]:" in spec:
        host, port = spec[1:].split("]:", 1)
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:
        host, port = spec.strip("[]"), ""
    if not port:
        return {"action": action, "host": host}
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidRequest(f"{spec!r}: the port must be a number from 1 to 65535")
    return {"action": action, "host": host, "port": int(port)}


async def refusal_advice(caller: Caller, sandbox_id: str, output: str, since: float) -> str | None:
    """Advice when the egress proxy refused something during a command: from its output, else from the log.

    The daemon ingests the proxy's records a moment after the fact (every quarter
    second), so when the output hints at a refusal without naming the host, the log
    is watched for a short while; a 403 the log shows as let through was the
    upstream's own answer, and gets no advice.
    """
    hosts = refused_hosts(output)
    if hosts:
        return egress_advice(hosts)
    hinted = looks_refused(output)
    deadline = time.monotonic() + (_LOG_WAIT_S if hinted else 0.0)
    while True:
        records = caller.daemon.egress_policies.log(
            caller.principal, sandbox_id, limit=_LOG_RECORDS_READ, since=since - _LOG_SLACK_S
        )
        refused = list(dict.fromkeys(r.host for r in records if r.blocked and r.host))
        if refused:
            return egress_advice(refused)
        if records or time.monotonic() >= deadline:
            break
        await asyncio.sleep(_LOG_POLL_S)
    return egress_advice([]) if hinted and not records else None


@tools.tool(read_only=True, idempotent=True)
async def get_egress_policy(ctx: Context, sandbox_id: SandboxId) -> Policy:
    """Show which hosts a sandbox may connect to (its egress policy).

    A sandbox reaches the network only through sandboxd's egress proxy, which refuses every
    host that no rule allows. Use it when a download, package install or API call fails with a
    403 or "blocked by sandboxd egress", to see what is allowed.
    """
    caller = caller_of(ctx)
    return policy_model(caller.daemon.egress_policies.sandbox_policy(caller.principal, sandbox_id))


@tools.tool(idempotent=True, open_world=True)
async def set_egress_policy(
    ctx: Context,
    sandbox_id: SandboxId,
    allow: Hosts = None,
    deny: Hosts = None,
    rules: Annotated[
        list[EgressRule] | None,
        Field(description="Full rules, for limits by HTTP method or path; most calls need only allow and deny."),
    ] = None,
    replace: Annotated[
        bool,
        Field(description="false (default): add to the rules in force. true: these become the only rules."),
    ] = False,
) -> Policy:
    """Change which hosts a sandbox may connect to; applies to new connections within a second.

    Only do this when a human has asked for it or agreed to it: the policy is the limit they
    set on what the sandbox can reach, and every change is audited. By default the hosts given
    are added to the rules in force; replace=true sets exactly these. A deny rule wins over any
    allow rule. Returns the policy now in force.
    """
    caller = caller_of(ctx)
    policies = caller.daemon.egress_policies
    current = [] if replace else policies.sandbox_policy(caller.principal, sandbox_id).rules
    added = [r.model_dump(exclude_none=True) for r in rules or ()]
    added += [_host_rule("deny", h) for h in deny or ()]
    added += [_host_rule("allow", h) for h in allow or ()]
    new_rules = [*current, *(r for r in added if r not in current)]
    checked = EgressPolicyIn.model_validate({"rules": new_rules}).rule_dicts()
    return policy_model(policies.set_sandbox_policy(caller.principal, sandbox_id, checked))


@tools.tool(read_only=True)
async def show_egress_log(
    ctx: Context,
    sandbox_id: SandboxId,
    blocked: Annotated[
        bool | None, Field(description="true: only refused requests; false: only allowed ones; leave out for both.")
    ] = None,
    host: Annotated[str | None, Field(description="Only requests to this host.")] = None,
    limit: Annotated[
        int, Field(ge=1, le=200, description=f"At most this many records. Default {DEFAULT_LOG_RECORDS}.")
    ] = DEFAULT_LOG_RECORDS,
    before: Annotated[
        int | None, Field(ge=1, description="next_before from a previous call, for older records.")
    ] = None,
) -> EgressLog:
    """Show the network requests a sandbox made through the egress proxy, newest first.

    Use it to find out why a connection failed: refused requests have blocked=true and a reason
    naming the rule (or the lack of one). A host that is refused cannot be reached from the
    sandbox by any route; ask a human to allow it.
    """
    caller = caller_of(ctx)
    records = caller.daemon.egress_policies.log(
        caller.principal, sandbox_id, limit=limit, before=before, blocked=blocked, host=host
    )
    next_before = records[-1].id if len(records) == limit else None
    return EgressLog(records=[log_entry(r) for r in records], next_before=next_before)
