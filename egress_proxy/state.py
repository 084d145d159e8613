"""The state file: how sandboxd tells the proxy who the sandboxes are and what each may do.

This is the whole contract between sandboxd and the proxy. sandboxd writes
the file with :func:`write_state_file` (atomic: temp file, fsync, rename); the
proxy (``egress_proxy.loader``) notices a new inode, size or mtime within about
250 ms and swaps in the parsed result without dropping connections. Each
request is decided with the state current when its headers arrive.

Plain form (option ``egress_state``)::

    {"version": 1,
     "sandboxes": {
       "<source IP on the sandbox network>": {
         "sandbox_id": "sbx_...", "tenant_id": "tnt_...",
         "policy": {"rules": [{"action": "allow" | "deny",
                               "host": "api.example.com" | "*.example.com" | "10.0.0.7" | "*",
                               "port": 443 | null, "methods": ["GET"] | null,
                               "path_prefix": "/v1/" | null, "name": "optional label"}]},
         "secrets": [{"name": "GITHUB_TOKEN", "placeholder": "sandboxd-ph-<random>",
                      "value": "<real>", "hosts": ["api.github.com", "*.github.com"],
                      "inject": {"type": "header", "header": "Authorization",
                                 "template": "Bearer {value}"}
                                | {"type": "basic", "username": "x"}
                                | {"type": "query", "param": "key"} | null,
                      "allow_in_body": false, "allow_in_query": false}]}}}

Encrypted form (option ``egress_state_key`` names a file holding exactly 32
random bytes): the file is ``nonce (12 bytes) || AES-256-GCM(JSON)`` with the
associated data ``b"sandboxd egress state v1"``.

Semantics: no rule matching means deny; a matching deny rule beats every
allow rule; an allow rule naming a host exactly (not a wildcard) is the only
way to reach a private, loopback or link-local address. A sandbox entry that
fails validation is refused as a whole (its traffic gets a 403 saying its
configuration is invalid) while every other sandbox keeps working.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from egress_proxy.credentials import SecretError, SecretSet, compile_secrets
from egress_proxy.rules import Policy, RuleError, compile_policy

STATE_VERSION = 1
STATE_AAD = b"sandboxd egress state v1"
_NONCE_BYTES = 12


class StateError(ValueError):
    """The state file cannot be read or does not follow the schema."""


@dataclass(frozen=True, slots=True)
class SandboxEntry:
    sandbox_id: str
    tenant_id: str
    policy: Policy
    secrets: SecretSet


@dataclass(frozen=True, slots=True)
class EgressState:
    sandboxes: Mapping[str, SandboxEntry] = field(default_factory=dict)
    invalid: Mapping[str, str] = field(default_factory=dict)
    """Source address -> why its entry was refused (shown in its 403 bodies)."""


@functools.lru_cache(maxsize=4096)
def normalize_client_ip(address: str) -> str:
    """Canonical form of a client address; IPv4-mapped IPv6 (dual-stack listeners) becomes IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_state(document: object) -> EgressState:
    """Validate a decoded state document. Raises StateError only for a bad top level."""
    if not isinstance(document, Mapping):
        raise StateError("the state must be a JSON object")
    if document.get("version") != STATE_VERSION:
        raise StateError(f"unsupported state version {document.get('version')!r}; expected {STATE_VERSION}")
    raw_sandboxes = document.get("sandboxes", {})
    if not isinstance(raw_sandboxes, Mapping):
        raise StateError("'sandboxes' must be an object keyed by source IP address")
    sandboxes: dict[str, SandboxEntry] = {}
    invalid: dict[str, str] = {}
    for address, raw_entry in raw_sandboxes.items():
        key = normalize_client_ip(str(address))
        try:
            ipaddress.ip_address(key)
            sandboxes[key] = parse_sandbox(raw_entry)
        except ValueError as exc:  # RuleError, SecretError, StateError and bad addresses
            invalid[key] = str(exc)
    return EgressState(sandboxes, invalid)


def parse_sandbox(raw: object) -> SandboxEntry:
    if not isinstance(raw, Mapping):
        raise StateError("a sandbox entry must be an object")
    sandbox_id, tenant_id = raw.get("sandbox_id"), raw.get("tenant_id")
    if not isinstance(sandbox_id, str) or not sandbox_id:
        raise StateError("sandbox_id must be a non-empty string")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise StateError("tenant_id must be a non-empty string")
    policy = raw.get("policy") or {}
    rules = policy.get("rules", []) if isinstance(policy, Mapping) else None
    if not isinstance(rules, list):
        raise StateError("policy.rules must be a list")
    try:
        compiled = compile_policy(rules)
        secrets = compile_secrets(raw.get("secrets") or [])
    except (RuleError, SecretError) as exc:
        raise StateError(f"sandbox {sandbox_id}: {exc}") from None
    return SandboxEntry(sandbox_id, tenant_id, compiled, secrets)


def load_key(path: str | os.PathLike[str]) -> bytes:
    key = Path(path).read_bytes()
    if len(key) != 32:
        raise StateError(f"the state key file {path} must hold exactly 32 bytes, not {len(key)}")
    return key


def decode_state_bytes(data: bytes, key: bytes | None) -> object:
    if key is not None:
        if len(data) <= _NONCE_BYTES:
            raise StateError("the encrypted state file is too short")
        try:
            data = AESGCM(key).decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], STATE_AAD)
        except InvalidTag:
            raise StateError("the state file does not decrypt with the configured key") from None
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(f"the state file is not valid JSON: {exc}") from None


def encode_state_bytes(document: Mapping[str, Any], key: bytes | None = None) -> bytes:
    data = json.dumps(document, separators=(",", ":")).encode()
    if key is None:
        return data
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, data, STATE_AAD)


def read_state_file(path: str | os.PathLike[str], key: bytes | None = None) -> EgressState:
    return parse_state(decode_state_bytes(Path(path).read_bytes(), key))


def write_state_file(
    path: str | os.PathLike[str], document: Mapping[str, Any], key: bytes | None = None
) -> None:
    """Atomically replace the state file (mode 0600); what sandboxd calls on every change.

    The document is validated first, so a bad policy is reported to the caller
    instead of being discovered by the proxy.
    """
    state = parse_state(document)
    if state.invalid:
        address, reason = next(iter(state.invalid.items()))
        raise StateError(f"sandbox entry for {address}: {reason}")
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(encode_state_bytes(document, key))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateHolder:
    """The current state, shared by the loader (which replaces it) and the addons (which read it).

    Replacement is a single attribute assignment, so a reader sees either the
    old state or the new one, never a mix.
    """

    def __init__(self, state: EgressState | None = None) -> None:
        self.current = state or EgressState()
