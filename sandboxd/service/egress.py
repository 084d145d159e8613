"""Egress policies (per sandbox, and each tenant's default) and the egress log, as the API sees them.

A sandbox created without rules follows its tenant's default, live: changing
the default changes what every such sandbox may reach, as the lifecycle
defaults do. A sandbox with its own rules keeps them until they are replaced
or cleared. With neither, everything is denied. Every change is audited and
reaches the proxy within a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sandboxd.egress.controller import EgressController
from sandboxd.egress.policy import validate_rules
from sandboxd.errors import Conflict, Forbidden, InvalidRequest
from sandboxd.ids import parse_id
from sandboxd.service.audit import AuditLog
from sandboxd.service.sandboxes import SandboxService
from sandboxd.service.tenants import Principal
from sandboxd.store import EgressLogRecord, Store

MAX_LOG_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class PolicyView:
    tenant_id: str
    sandbox_id: str | None
    rules: list[dict[str, Any]]
    source: Literal["sandbox", "tenant", "default"]


def _summary(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rules": len(rules),
        "allow": sorted({str(r.get("host")) for r in rules if r.get("action") == "allow"})[:20],
        "deny": sorted({str(r.get("host")) for r in rules if r.get("action") == "deny"})[:20],
    }


class EgressService:
    def __init__(
        self,
        store: Store,
        sandboxes: SandboxService,
        controller: EgressController,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sandboxes = sandboxes
        self._controller = controller
        self._audit = audit
        self._clock = clock

    # --- per sandbox ---------------------------------------------------------------------------

    def sandbox_policy(self, principal: Principal, sandbox_id: str) -> PolicyView:
        record = self._sandboxes.get(principal, sandbox_id)
        row = self._store.get_sandbox_egress(record.id)
        if row is not None and row.policy is not None:
            return PolicyView(record.tenant_id, record.id, row.policy, "sandbox")
        tenant = self.tenant_policy(principal)
        return PolicyView(record.tenant_id, record.id, tenant.rules, tenant.source)

    def set_sandbox_policy(
        self, principal: Principal, sandbox_id: str, rules: list[dict[str, Any]] | None
    ) -> PolicyView:
        """Replace the sandbox's rules; None returns it to the tenant default.

        Raises:
            NotFound: no such sandbox for this tenant.
            InvalidRequest: a bad rule.
            Conflict: the sandbox has no egress (created while egress was off).
        """
        record = self._sandboxes.get(principal, sandbox_id)
        if rules is not None:
            validate_rules(rules)
        args = {"default": True} if rules is None else _summary(rules)
        with self._audit.recording(principal, "sandbox.egress_policy", sandbox_id=record.id, args=args):
            if self._store.get_sandbox_egress(record.id) is None:
                raise Conflict(f"sandbox {record.id} was created without egress (no network); create a new one")
            self._store.set_sandbox_policy(record.id, rules, self._clock())
            self._controller.refresh()
        return self.sandbox_policy(principal, record.id)

    def log(
        self,
        principal: Principal,
        sandbox_id: str,
        *,
        limit: int = 100,
        before: int | None = None,
        blocked: bool | None = None,
        host: str | None = None,
        since: float | None = None,
    ) -> list[EgressLogRecord]:
        """The sandbox's egress requests, newest first."""
        record = self._sandboxes.get(principal, sandbox_id)
        if not 1 <= limit <= MAX_LOG_LIMIT:
            raise InvalidRequest(f"limit must be between 1 and {MAX_LOG_LIMIT}")
        return self._store.query_egress_log(
            record.id, limit=limit, before=before, blocked=blocked, host=host.lower() if host else None, since=since
        )

    # --- the tenant default --------------------------------------------------------------------

    def tenant_policy(self, principal: Principal, tenant_id: str | None = None) -> PolicyView:
        tenant_id = self._tenant(principal, tenant_id)
        rules = self._store.get_tenant_egress_policy(tenant_id)
        if rules is None:
            return PolicyView(tenant_id, None, [], "default")
        return PolicyView(tenant_id, None, rules, "tenant")

    def set_tenant_policy(
        self, principal: Principal, rules: list[dict[str, Any]], tenant_id: str | None = None
    ) -> PolicyView:
        """Set the rules every sandbox of the tenant without rules of its own follows.

        Raises:
            InvalidRequest: a bad rule.
            Forbidden: another tenant's default, without an admin key.
        """
        tenant_id = self._tenant(principal, tenant_id)
        validate_rules(rules)
        with self._audit.recording(principal, "tenant.egress_policy", args=_summary(rules), tenant_id=tenant_id):
            if self._store.get_tenant(tenant_id) is None:
                raise InvalidRequest(f"no tenant {tenant_id}")
            self._store.set_tenant_egress_policy(tenant_id, rules, self._clock())
            self._controller.refresh()
        return self.tenant_policy(principal, tenant_id)

    def _tenant(self, principal: Principal, tenant_id: str | None) -> str:
        if tenant_id is None or tenant_id == principal.tenant_id:
            return principal.tenant_id
        if not principal.admin:
            raise Forbidden("only an admin key can read or set another tenant's egress policy")
        return parse_id("tnt", tenant_id, "tenant id")
