"""Tenants, their API keys, and turning an Authorization header into a Principal.

A key reads ``sbd_<key id without its prefix>_<43 url-safe characters>``: the id
part finds the row in one lookup, the secret part is checked against its
SHA-256. A fast hash is right here because the secret carries 256 random bits;
there is nothing for a slow hash to protect against guessing.

An operator may also choose the first admin key (SANDBOXD_API_KEY). Any string
of 32 to 256 printable ASCII characters without spaces is accepted; one not in
the ``sbd_`` form gets an id derived from its hash, so it is found in the same
single lookup, and the whole string is its secret.

Admin keys act on every tenant; other keys only on their own tenant.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Final

from sandboxd import ids
from sandboxd.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthenticated,
)
from sandboxd.service.audit import AuditLog
from sandboxd.store import ApiKey, Store, Tenant

__all__ = [
    "DEFAULT_TENANT",
    "Principal",
    "TenantService",
    "format_api_key",
    "parse_api_key",
]

log = logging.getLogger(__name__)

DEFAULT_TENANT: Final = "default"
KEY_PREFIX: Final = "sbd_"
SECRET_CHARS: Final = 43  # secrets.token_urlsafe(32)

_OUR_KEY: Final = re.compile(
    rf"sbd_([a-z2-7]{{{ids.RANDOM_CHARS}}})_([A-Za-z0-9_-]{{{SECRET_CHARS}}})"
)
_CHOSEN_KEY: Final = re.compile(r"[!-~]{32,256}")  # printable ASCII, no spaces
_TENANT_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_KEY_NAME: Final = re.compile(r"[^\x00-\x1f\x7f]{1,64}")

_MISSING_HEADER: Final = "missing Authorization header: send 'Authorization: Bearer <api key>'"
_NOT_BEARER: Final = "the Authorization header must read 'Bearer <api key>'"
_MALFORMED_KEY: Final = (
    "malformed API key: expected sbd_<20 letters/digits>_<43 characters>, as printed when "
    "the key was created (or the SANDBOXD_API_KEY value the server was started with)"
)
_INVALID_KEY: Final = "invalid API key: it is unknown or has been revoked"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant acted for, the key used, and whether that key is an admin's."""

    tenant_id: str
    key_id: str
    admin: bool


def format_api_key(key_id: str, secret: str) -> str:
    return f"{KEY_PREFIX}{key_id.removeprefix(ids.KEY + '_')}_{secret}"


def parse_api_key(plaintext: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    ours = _OUR_KEY.fullmatch(plaintext)
    if ours is not None:
        return f"{ids.KEY}_{ours.group(1)}", ours.group(2)
    if plaintext.startswith(KEY_PREFIX) or not _CHOSEN_KEY.fullmatch(plaintext):
        return None
    digest = hashlib.sha256(b"sandboxd key id:" + plaintext.encode()).digest()
    derived = base64.b32encode(digest).decode("ascii")[: ids.RANDOM_CHARS].lower()
    return f"{ids.KEY}_{derived}", plaintext


class TenantService:
    def __init__(self, store: Store, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit
        # key id -> (secret hash, principal), filled on successful lookups.
        self._known: dict[str, tuple[str, Principal]] = {}

    def bootstrap(self, admin_key: str | None) -> str | None:
        """Make sure an admin can get in; returns a new admin key's plaintext, to print once.

        First start: creates tenant "default" and an admin key for it, either
        ``admin_key`` (SANDBOXD_API_KEY; returns None) or a generated one (returned).
        Later starts return None, and register ``admin_key`` if it is new.

        Raises:
            InvalidRequest: ``admin_key`` is not a usable key.
        """
        chosen = None
        if admin_key is not None:
            chosen = parse_api_key(admin_key)
            if chosen is None:
                raise InvalidRequest(
                    "SANDBOXD_API_KEY must be 32 to 256 printable ASCII characters without "
                    "spaces, not starting with sbd_ unless it is a key printed by sandboxd "
                    "(sbd_<20 letters/digits>_<43 characters>); unset it to have a key generated"
                )
        if not self._store.list_tenants():
            tenant = self._insert_tenant(None, DEFAULT_TENANT)
            if chosen is None:
                _, plaintext = self._insert_key(None, tenant.id, "first admin key", admin=True)
                return plaintext
            self._insert_key(None, tenant.id, "SANDBOXD_API_KEY", admin=True, given=chosen)
            return None
        if chosen is not None:
            self._register_configured_key(*chosen)
        return None

    def authenticate(self, authorization_header: str | None) -> Principal:
        """The caller behind ``Authorization: Bearer <key>``.

        Raises:
            Unauthenticated: no header, not Bearer, a malformed key, or a key that is
                unknown or revoked (one message for both, so neither is revealed).
        """
        if not authorization_header:
            raise Unauthenticated(_MISSING_HEADER)
        scheme, _, token = authorization_header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(_NOT_BEARER)
        parsed = parse_api_key(token.strip())
        if parsed is None:
            raise Unauthenticated(_MALFORMED_KEY)
        key_id, secret = parsed
        offered = _secret_hash(secret)
        known = self._known.get(key_id)
        if known is not None:
            if hmac.compare_digest(known[0], offered):
                return known[1]
            raise Unauthenticated(_INVALID_KEY)
        key = self._store.get_key(key_id)
        if key is None or key.revoked or not hmac.compare_digest(key.secret_hash, offered):
            raise Unauthenticated(_INVALID_KEY)
        principal = Principal(key.tenant_id, key.id, key.admin)
        self._known[key_id] = (key.secret_hash, principal)
        return principal

    def create_tenant(self, principal: Principal, name: str) -> Tenant:
        """Raises: Forbidden (not an admin key), InvalidRequest (bad name), AlreadyExists."""
        with self._audit.recording(principal, "tenant.create", args={"name": name}) as pending:
            _require_admin(principal, "create tenants")
            tenant = self._insert_tenant(principal, name, audit=False)
            pending.args["tenant_id"] = tenant.id
            return tenant

    def list_tenants(self, principal: Principal) -> list[Tenant]:
        """Every tenant for an admin key; a tenant's own record for any other key."""
        if principal.admin:
            return self._store.list_tenants()
        own = self._store.get_tenant(principal.tenant_id)
        return [own] if own is not None else []

    def create_key(
        self, principal: Principal, tenant_id: str, name: str, admin: bool = False
    ) -> tuple[ApiKey, str]:
        """A new key and its plaintext (shown once, never stored).

        Raises: Forbidden (not an admin key), InvalidRequest (bad id or name),
            NotFound (no such tenant).
        """
        args = {"tenant_id": tenant_id, "name": name, "admin": admin}
        with self._audit.recording(principal, "key.create", args=args) as pending:
            _require_admin(principal, "create API keys")
            ids.parse_id(ids.TENANT, tenant_id)
            if self._store.get_tenant(tenant_id) is None:
                raise NotFound(f"tenant {tenant_id} does not exist")
            key, plaintext = self._insert_key(principal, tenant_id, name, admin=admin, audit=False)
            pending.args["key_id"] = key.id
            return key, plaintext

    def list_keys(self, principal: Principal, tenant_id: str | None = None) -> list[ApiKey]:
        """Keys (hashes included: callers must not show ``secret_hash``), oldest first.

        A non-admin key lists its own tenant's keys only.

        Raises: NotFound (a tenant that does not exist, or another tenant's for a non-admin key).
        """
        if tenant_id is not None:
            ids.parse_id(ids.TENANT, tenant_id)
            if (not principal.admin and tenant_id != principal.tenant_id) or (
                self._store.get_tenant(tenant_id) is None
            ):
                raise NotFound(f"tenant {tenant_id} does not exist")
        elif not principal.admin:
            tenant_id = principal.tenant_id
        return self._store.list_keys(tenant_id)

    def revoke_key(self, principal: Principal, key_id: str) -> ApiKey:
        """Revoke a key at once (revoking one already revoked changes nothing).

        Raises: Forbidden (not an admin key), InvalidRequest (bad id), NotFound,
            Conflict (it is the last admin key that is not revoked).
        """
        with self._audit.recording(principal, "key.revoke", args={"key_id": key_id}) as pending:
            _require_admin(principal, "revoke API keys")
            ids.parse_id(ids.KEY, key_id)
            key = self._store.get_key(key_id)
            if key is None:
                raise NotFound(f"API key {key_id} does not exist")
            pending.tenant_id = key.tenant_id
            if key.revoked:
                pending.args["already_revoked"] = True
                return key
            if key.admin and not any(
                other.admin and not other.revoked and other.id != key.id
                for other in self._store.list_keys()
            ):
                raise Conflict(
                    f"API key {key_id} is the last admin key: create another admin key first"
                )
            at = time.time()
            self._store.revoke_key(key_id, at)
            self._known.pop(key_id, None)
            return ApiKey(
                key.id, key.tenant_id, key.name, key.secret_hash, key.admin, key.created_at, at
            )

    # -- internals ---------------------------------------------------------------

    def _insert_tenant(
        self, principal: Principal | None, name: str, *, audit: bool = True
    ) -> Tenant:
        if not isinstance(name, str) or not _TENANT_NAME.fullmatch(name):
            raise InvalidRequest(
                f"tenant name {name!r} is not allowed: use 1 to 64 characters, lowercase "
                "letters, digits, '-' and '_', starting with a letter or digit"
            )
        tenant = Tenant(ids.new_id(ids.TENANT), name, time.time())
        self._store.insert_tenant(tenant)
        if audit:
            self._audit.record(
                principal, "tenant.create", args={"tenant_id": tenant.id, "name": name},
                tenant_id=tenant.id,
            )
        return tenant

    def _insert_key(
        self,
        principal: Principal | None,
        tenant_id: str,
        name: str,
        *,
        admin: bool,
        given: tuple[str, str] | None = None,
        audit: bool = True,
    ) -> tuple[ApiKey, str]:
        if not isinstance(name, str) or not _KEY_NAME.fullmatch(name):
            raise InvalidRequest("key name must be 1 to 64 characters without control characters")
        if given is None:
            key_id, secret = ids.new_id(ids.KEY), secrets.token_urlsafe(32)
            plaintext = format_api_key(key_id, secret)
        else:
            (key_id, secret), plaintext = given, ""
        key = ApiKey(key_id, tenant_id, name, _secret_hash(secret), admin, time.time(), None)
        self._store.insert_key(key)
        if audit:
            self._audit.record(
                principal, "key.create",
                args={"tenant_id": tenant_id, "key_id": key_id, "name": name, "admin": admin},
                tenant_id=tenant_id,
            )
        return key, plaintext

    def _register_configured_key(self, key_id: str, secret: str) -> None:
        existing = self._store.get_key(key_id)
        if existing is None:
            tenant = self._store.get_tenant_by_name(DEFAULT_TENANT) or self._insert_tenant(
                None, DEFAULT_TENANT
            )
            self._insert_key(
                None, tenant.id, "SANDBOXD_API_KEY", admin=True, given=(key_id, secret)
            )
            log.info("registered SANDBOXD_API_KEY as admin key %s", key_id)
        elif not hmac.compare_digest(existing.secret_hash, _secret_hash(secret)):
            raise InvalidRequest(
                f"SANDBOXD_API_KEY has the id of the existing key {key_id} but not its secret: "
                "use that key's full value, or another key"
            )
        elif existing.revoked:
            log.warning(
                "SANDBOXD_API_KEY is key %s, which has been revoked: it will not work", key_id
            )


def _require_admin(principal: Principal, to_do: str) -> None:
    if not principal.admin:
        raise Forbidden(f"only an admin key may {to_do}")


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
