"""Secrets: credentials a tenant stores once and its sandboxes use without ever holding them.

A value is sealed (AES-GCM, ``sandboxd.egress.keys``) as soon as it arrives and
is opened only to write the proxy's encrypted state file. No answer of this
service carries it, and neither does an audit record or a log line: what is
recorded is the name, the hosts and how it is injected. A sandbox created with
a secret's name holds only a placeholder; the proxy puts the value into
requests for the secret's hosts. Changing or deleting a secret reaches every
sandbox that uses it within a second.
"""

from __future__ import annotations

import secrets as random
import time
from collections.abc import Callable

from egress_proxy.credentials import SecretError, parse_secret
from egress_proxy.rules import RuleError
from sandboxd.egress.controller import EgressController
from sandboxd.egress.sandbox_env import PLACEHOLDER_PREFIX, reserved_names
from sandboxd.errors import InvalidRequest, NotFound
from sandboxd.models import PutSecret, check_secret_name
from sandboxd.service.audit import AuditLog
from sandboxd.service.tenants import Principal
from sandboxd.store import SecretRecord, Store

MAX_VALUE_CHARS = 65536


class SecretService:
    def __init__(
        self, store: Store, controller: EgressController, audit: AuditLog, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._controller = controller
        self._audit = audit
        self._clock = clock

    def put(self, principal: Principal, name: str, req: PutSecret) -> tuple[SecretRecord, bool]:
        """Store or replace the secret; returns it (sealed) and whether it is new.

        Raises:
            InvalidRequest: a bad name, value, host or injection; the message never repeats the value.
        """
        name = _check_name(name)
        value = req.value.get_secret_value()
        inject = req.inject.model_dump(exclude_none=True) if req.inject is not None else None
        _check_usable(name, value, req.hosts, inject, req.allow_in_body, req.allow_in_query)
        now = self._clock()
        existing = self._store.get_secret(principal.tenant_id, name)
        record = SecretRecord(
            tenant_id=principal.tenant_id,
            name=name,
            sealed=self._controller.box.seal(principal.tenant_id, name, value),
            hosts=list(req.hosts),
            inject=inject,
            allow_in_body=req.allow_in_body,
            allow_in_query=req.allow_in_query,
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        args = {
            "name": name,
            "hosts": list(req.hosts),
            "inject_type": inject["type"] if inject else None,
            "allow_in_body": req.allow_in_body,
            "allow_in_query": req.allow_in_query,
        }
        with self._audit.recording(principal, "secret.put", args=args) as pending:
            created = self._store.put_secret(record)
            pending.args["created"] = created
            self._controller.refresh()
        return record, created

    def list(self, principal: Principal) -> list[SecretRecord]:
        return self._store.list_secrets(principal.tenant_id)

    def get(self, principal: Principal, name: str) -> SecretRecord:
        found = self._store.get_secret(principal.tenant_id, name)
        if found is None:
            raise NotFound(f"no secret {name}")
        return found

    def delete(self, principal: Principal, name: str) -> None:
        """Delete it; sandboxes that had it keep their placeholder, which the proxy then leaves alone.

        Raises:
            NotFound: no secret of that name in this tenant.
        """
        with self._audit.recording(principal, "secret.delete", args={"name": name}):
            if not self._store.delete_secret(principal.tenant_id, name):
                raise NotFound(f"no secret {name}")
            self._controller.refresh()


def _check_name(name: str) -> str:
    try:
        check_secret_name(name)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    if name in reserved_names():
        raise InvalidRequest(f"{name} is set by sandboxd in every sandbox; choose another secret name")
    return name


def _check_usable(
    name: str, value: str, hosts: list[str], inject: dict[str, object] | None, in_body: bool, in_query: bool
) -> None:
    """The proxy's own parser, on the secret as the state file will carry it."""
    if len(value) > MAX_VALUE_CHARS:
        raise InvalidRequest(f"secret {name!r}: value must be at most {MAX_VALUE_CHARS} characters")
    probe = {
        "name": name,
        "placeholder": PLACEHOLDER_PREFIX + random.token_urlsafe(18),
        "value": value,
        "hosts": hosts,
        "inject": inject,
        "allow_in_body": in_body,
        "allow_in_query": in_query,
    }
    try:
        parse_secret(probe)
    except (SecretError, RuleError) as exc:
        raise InvalidRequest(str(exc)) from None
