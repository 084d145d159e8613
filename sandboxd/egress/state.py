"""The proxy's state file, rebuilt from the store whenever anything in it changes.

The file maps each sandbox's address on the sandbox network to its id, tenant,
effective policy and secrets (placeholders and values); its schema, encryption
and atomic writer belong to ``egress_proxy.state``. It is always rebuilt whole
from the store, never patched, so it cannot drift from what the store says.

Docker hands a freed address to the next container at once. Between a rewrite
and the proxy loading it (its loader polls every 250 ms), a new sandbox on a
recycled address would be taken for the old one. The publisher therefore
remembers when each address last changed hands, and ``settle_delay`` tells the
caller how long to hold a sandbox back before its first request could be
misread; sandboxd drops an address from the file before removing its container,
so in the ordinary course that time has passed before anyone asks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from egress_proxy.state import STATE_VERSION, StateError, parse_sandbox, write_state_file
from sandboxd.egress.keys import SecretBox
from sandboxd.errors import SandboxdError
from sandboxd.store import SandboxEgress, SecretRecord, Store

_log = logging.getLogger(__name__)

# The proxy notices a new file within one poll period (egress_proxy.loader.POLL_SECONDS, not
# imported: that module pulls in all of mitmproxy) and reads it in a few milliseconds.
PROXY_POLL_S = 0.25
RELOAD_GRACE_S = PROXY_POLL_S + 0.05


def secret_entry(secret: SecretRecord, placeholder: str, value: str) -> dict[str, Any]:
    return {
        "name": secret.name,
        "placeholder": placeholder,
        "value": value,
        "hosts": list(secret.hosts),
        "inject": secret.inject,
        "allow_in_body": secret.allow_in_body,
        "allow_in_query": secret.allow_in_query,
    }


def build_document(
    sandboxes: Iterable[SandboxEgress],
    tenant_policies: Mapping[str, list[dict[str, Any]]],
    placeholders: Mapping[str, Mapping[str, str]],
    secrets: Mapping[tuple[str, str], SecretRecord],
    reveal: Callable[[SecretRecord], str],
) -> tuple[dict[str, Any], list[str]]:
    """The state document, and what had to be left out of it (one sentence each).

    Only sandboxes with an address appear. Where two claim one address (a container
    died and its address went to a newer one), the latest to attach has it. An
    entry the proxy would refuse is left out whole, so its traffic is refused as
    from an unknown client while every other sandbox keeps working.
    """
    by_ip: dict[str, SandboxEgress] = {}
    for row in sandboxes:
        if row.ip is None:
            continue
        held = by_ip.get(row.ip)
        if held is None or (row.attached_at or 0.0) > (held.attached_at or 0.0):
            by_ip[row.ip] = row
    entries: dict[str, Any] = {}
    problems: list[str] = []
    for ip, row in sorted(by_ip.items()):
        rules = row.policy if row.policy is not None else tenant_policies.get(row.tenant_id, [])
        secret_list = []
        for name, placeholder in sorted(placeholders.get(row.sandbox_id, {}).items()):
            secret = secrets.get((row.tenant_id, name))
            if secret is None:
                continue  # deleted since the sandbox was made: its placeholder stays a plain string
            try:
                secret_list.append(secret_entry(secret, placeholder, reveal(secret)))
            except SandboxdError as exc:
                problems.append(f"sandbox {row.sandbox_id}: {exc.message}")
        entry = {"sandbox_id": row.sandbox_id, "tenant_id": row.tenant_id, "policy": {"rules": rules}, "secrets": secret_list}
        try:
            parse_sandbox(entry)
        except (StateError, ValueError) as exc:
            problems.append(f"sandbox {row.sandbox_id} left out of the egress state: {exc}")
            continue
        entries[ip] = entry
    return {"version": STATE_VERSION, "sandboxes": entries}, problems


class StatePublisher:
    def __init__(
        self,
        store: Store,
        box: SecretBox,
        path: Path,
        key: bytes,
        *,
        reload_grace_s: float = RELOAD_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._box = box
        self.path = path
        self._key = key
        self._grace = reload_grace_s
        self._clock = clock
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}
        self._changed_hands: dict[str, float] = {}
        self.writes = 0

    def publish(self) -> None:
        """Rebuild the state file from the store and replace it atomically."""
        with self._lock:
            secrets = {(s.tenant_id, s.name): s for s in self._store.list_secrets()}
            document, problems = build_document(
                self._store.list_sandbox_egress(attached=True),
                self._store.tenant_egress_policies(),
                self._store.attached_placeholders(),
                secrets,
                lambda secret: self._box.open(secret.tenant_id, secret.name, secret.sealed),
            )
            for problem in problems:
                _log.error("egress state: %s", problem)
            write_state_file(self.path, document, self._key)
            self.writes += 1
            owners = {ip: entry["sandbox_id"] for ip, entry in document["sandboxes"].items()}
            now = self._clock()
            for ip in self._owners.keys() | owners.keys():
                if self._owners.get(ip) != owners.get(ip):
                    self._changed_hands[ip] = now
            self._owners = owners
            # Forget what is long settled, so the map stays as small as the fleet.
            self._changed_hands = {ip: t for ip, t in self._changed_hands.items() if now - t < self._grace}

    def settle_delay(self, ip: str) -> float:
        """Seconds until the proxy surely knows who ``ip`` belongs to now (0 when it already does)."""
        with self._lock:
            changed = self._changed_hands.get(ip)
        if changed is None:
            return 0.0
        return max(0.0, changed + self._grace - self._clock())
