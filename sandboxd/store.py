"""SQLite state: tenants, API keys, sandboxes, the audit log and a small key/value table.

The only module that speaks SQL. One connection serves the whole daemon: every
statement is sub-millisecond, so a single lock around the connection costs less
than a pool would, and it makes each write transaction exclusive within the
process (``BEGIN IMMEDIATE`` makes it exclusive against other processes too, such
as a CLI reading the same file). WAL lets those other processes read while the
daemon writes; ``synchronous=NORMAL`` gives up durability of the last commits on
power loss (never consistency) for commits that do not wait on fsync.

Schema changes are an ordered list of scripts; ``PRAGMA user_version`` records
how many have been applied, so opening a database runs only the new ones.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sandboxd.errors import AlreadyExists, Conflict, NotFound, SandboxdError

__all__ = [
    "SANDBOX_STATES",
    "SNAPSHOT_STATES",
    "ApiKey",
    "AuditRecord",
    "EgressLogRecord",
    "LifecycleDefaults",
    "SandboxEgress",
    "SandboxRecord",
    "SecretRecord",
    "SnapshotRecord",
    "Store",
    "Tenant",
]

SANDBOX_STATES: Final = frozenset(
    {"creating", "running", "paused", "stopped", "hibernated", "failed", "deleting"}
    # Passing states of suspension and rollback, written before the engine is touched so
    # reconciliation after a crash knows what was under way (sandboxd.service.lifecycle).
    | {"hibernating", "waking", "restoring"}
)
SNAPSHOT_STATES: Final = frozenset({"creating", "ready", "deleting"})

# Where the newest audit record's (seq, hash) is kept, written in the same
# transaction as the record: the anchor that makes a cut-off tail detectable.
_AUDIT_HEAD_KEY: Final = "audit_head"
_AUDIT_BATCH: Final = 1000
_BUSY_TIMEOUT_S: Final = 5.0

_MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the first schema.
    """
    CREATE TABLE tenants (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_at  REAL NOT NULL
    );
    CREATE TABLE api_keys (
        id           TEXT PRIMARY KEY,
        tenant_id    TEXT NOT NULL REFERENCES tenants(id),
        name         TEXT NOT NULL,
        secret_hash  TEXT NOT NULL,
        admin        INTEGER NOT NULL,
        created_at   REAL NOT NULL,
        revoked_at   REAL
    );
    CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
    CREATE TABLE sandboxes (
        id            TEXT PRIMARY KEY,
        tenant_id     TEXT NOT NULL REFERENCES tenants(id),
        state         TEXT NOT NULL,
        image         TEXT NOT NULL,
        spec          TEXT NOT NULL,
        labels        TEXT NOT NULL,
        container_id  TEXT,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        error         TEXT
    );
    CREATE INDEX sandboxes_by_tenant ON sandboxes (tenant_id, created_at);
    CREATE INDEX sandboxes_by_state ON sandboxes (state);
    CREATE TABLE audit (
        seq         INTEGER PRIMARY KEY,
        ts          REAL NOT NULL,
        tenant_id   TEXT,
        key_id      TEXT,
        sandbox_id  TEXT,
        action      TEXT NOT NULL,
        args        TEXT NOT NULL,
        result      TEXT NOT NULL,
        error       TEXT,
        prev_hash   TEXT NOT NULL,
        hash        TEXT NOT NULL
    );
    CREATE INDEX audit_by_tenant ON audit (tenant_id, seq);
    CREATE INDEX audit_by_sandbox ON audit (sandbox_id, seq);
    CREATE INDEX audit_by_ts ON audit (ts);
    CREATE TABLE meta (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    """,
    # 2: snapshots (filesystem images of sandboxes) and per-tenant lifecycle defaults.
    """
    CREATE TABLE snapshots (
        id           TEXT PRIMARY KEY,
        tenant_id    TEXT NOT NULL REFERENCES tenants(id),
        sandbox_id   TEXT,
        parent_id    TEXT,
        name         TEXT NOT NULL,
        labels       TEXT NOT NULL,
        state        TEXT NOT NULL,
        image        TEXT NOT NULL,
        image_id     TEXT,
        size_bytes   INTEGER,
        total_bytes  INTEGER,
        spec         TEXT NOT NULL,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        error        TEXT
    );
    CREATE INDEX snapshots_by_tenant ON snapshots (tenant_id, created_at);
    CREATE INDEX snapshots_by_parent ON snapshots (parent_id);
    CREATE INDEX snapshots_by_state ON snapshots (state);
    CREATE TABLE lifecycle_defaults (
        tenant_id       TEXT PRIMARY KEY REFERENCES tenants(id),
        idle_timeout_s  INTEGER,
        idle_action     TEXT,
        max_lifetime_s  INTEGER,
        updated_at      REAL NOT NULL
    );
    """,
    # 3: egress (sandboxd.egress): per-sandbox policy, address and placeholders, tenant
    # default policies, sealed secrets, and the ingested egress audit.
    """
    CREATE TABLE sandbox_egress (
        sandbox_id   TEXT PRIMARY KEY,
        tenant_id    TEXT NOT NULL,
        policy       TEXT,
        ip           TEXT,
        attached_at  REAL,
        updated_at   REAL NOT NULL
    );
    CREATE INDEX sandbox_egress_by_tenant ON sandbox_egress (tenant_id);
    CREATE TABLE sandbox_secrets (
        sandbox_id   TEXT NOT NULL,
        name         TEXT NOT NULL,
        placeholder  TEXT NOT NULL,
        PRIMARY KEY (sandbox_id, name)
    );
    CREATE TABLE tenant_egress (
        tenant_id   TEXT PRIMARY KEY REFERENCES tenants(id),
        policy      TEXT NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE secrets (
        tenant_id       TEXT NOT NULL REFERENCES tenants(id),
        name            TEXT NOT NULL,
        sealed          BLOB NOT NULL,
        hosts           TEXT NOT NULL,
        inject          TEXT,
        allow_in_body   INTEGER NOT NULL,
        allow_in_query  INTEGER NOT NULL,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL,
        PRIMARY KEY (tenant_id, name)
    );
    CREATE TABLE egress_log (
        id           INTEGER PRIMARY KEY,
        ts           REAL NOT NULL,
        sandbox_id   TEXT,
        tenant_id    TEXT,
        client_ip    TEXT,
        method       TEXT,
        scheme       TEXT,
        host         TEXT,
        port         INTEGER,
        path         TEXT,
        status       INTEGER,
        bytes_out    INTEGER NOT NULL,
        bytes_in     INTEGER NOT NULL,
        duration_ms  REAL,
        secrets      TEXT NOT NULL,
        blocked      INTEGER NOT NULL,
        reason       TEXT
    );
    CREATE INDEX egress_log_by_sandbox ON egress_log (sandbox_id, id);
    """,
)


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    secret_hash: str
    admin: bool
    created_at: float
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class SandboxRecord:
    id: str
    tenant_id: str
    state: str
    image: str
    spec: dict[str, Any]
    labels: dict[str, str]
    container_id: str | None
    created_at: float
    updated_at: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    id: str
    tenant_id: str
    # The sandbox it was taken of (None when imported); it may since have been deleted.
    sandbox_id: str | None
    # The snapshot whose image this one's image is built on: it stores only what changed since.
    parent_id: str | None
    name: str
    labels: dict[str, str]
    state: str
    image: str
    image_id: str | None
    # Bytes this snapshot adds on top of its base image, and the whole filesystem's size.
    size_bytes: int | None
    total_bytes: int | None
    # The source sandbox's settings (limits, env names, lifecycle) that forks inherit.
    spec: dict[str, Any]
    created_at: float
    updated_at: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LifecycleDefaults:
    """A tenant's defaults for sandboxes that set no lifecycle policy of their own."""

    tenant_id: str
    idle_timeout_s: int | None
    idle_action: str | None
    max_lifetime_s: int | None
    updated_at: float


# --- egress (sandboxd.egress) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SandboxEgress:
    """A sandbox's egress identity: its policy (None: the tenant default) and network address."""

    sandbox_id: str
    tenant_id: str
    policy: list[dict[str, Any]] | None
    # Its address on the sandbox network while it has a container there; None otherwise.
    ip: str | None
    attached_at: float | None
    updated_at: float


@dataclass(frozen=True, slots=True, repr=False)
class SecretRecord:
    tenant_id: str
    name: str
    # The value, sealed with the daemon's secrets key (sandboxd.egress.keys.SecretBox).
    sealed: bytes
    hosts: list[str]
    inject: dict[str, Any] | None
    allow_in_body: bool
    allow_in_query: bool
    created_at: float
    updated_at: float

    def __repr__(self) -> str:
        return f"SecretRecord(tenant_id={self.tenant_id!r}, name={self.name!r})"


@dataclass(frozen=True, slots=True)
class EgressLogRecord:
    """One request a sandbox sent through the egress proxy (``egress_proxy.audit``'s line format)."""

    id: int | None
    ts: float
    sandbox_id: str | None
    tenant_id: str | None
    client_ip: str | None
    method: str | None
    scheme: str | None
    host: str | None
    port: int | None
    path: str | None
    status: int | None
    bytes_out: int
    bytes_in: int
    duration_ms: float | None
    secrets: list[str]
    blocked: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    ts: float
    tenant_id: str | None
    key_id: str | None
    sandbox_id: str | None
    action: str
    args: dict[str, Any]
    result: str
    error: str | None
    prev_hash: str
    hash: str


_TENANT_COLUMNS: Final = "id, name, created_at"
_KEY_COLUMNS: Final = "id, tenant_id, name, secret_hash, admin, created_at, revoked_at"
_SANDBOX_COLUMNS: Final = (
    "id, tenant_id, state, image, spec, labels, container_id, created_at, updated_at, error"
)
_AUDIT_COLUMNS: Final = (
    "seq, ts, tenant_id, key_id, sandbox_id, action, args, result, error, prev_hash, hash"
)
_SANDBOX_UPDATABLE: Final = frozenset(
    {"state", "image", "spec", "labels", "container_id", "error", "updated_at"}
)
_SNAPSHOT_COLUMNS: Final = (
    "id, tenant_id, sandbox_id, parent_id, name, labels, state, image, image_id, size_bytes,"
    " total_bytes, spec, created_at, updated_at, error"
)
_SNAPSHOT_UPDATABLE: Final = frozenset(
    {"parent_id", "name", "labels", "state", "image", "image_id", "size_bytes", "total_bytes",
     "spec", "error", "updated_at"}
)


class Store:
    """The daemon's state in one SQLite file (or ``":memory:"`` for tests)."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        if str(path) != ":memory:":
            _create_private(Path(path))
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(path), timeout=_BUSY_TIMEOUT_S, check_same_thread=False, autocommit=True
        )
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    # -- tenants ---------------------------------------------------------------

    def insert_tenant(self, tenant: Tenant) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO tenants ({_TENANT_COLUMNS}) VALUES (?, ?, ?)",
                    (tenant.id, tenant.name, tenant.created_at),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"a tenant named {tenant.name!r} already exists") from exc

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = self._one(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = ?", (tenant_id,))
        return Tenant(*row) if row else None

    def get_tenant_by_name(self, name: str) -> Tenant | None:
        row = self._one(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE name = ?", (name,))
        return Tenant(*row) if row else None

    def list_tenants(self) -> list[Tenant]:
        rows = self._all(f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY created_at, id", ())
        return [Tenant(*row) for row in rows]

    # -- API keys --------------------------------------------------------------

    def insert_key(self, key: ApiKey) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        key.id,
                        key.tenant_id,
                        key.name,
                        key.secret_hash,
                        int(key.admin),
                        key.created_at,
                        key.revoked_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise _integrity_error(exc, f"API key {key.id}", key.tenant_id) from exc

    def get_key(self, key_id: str) -> ApiKey | None:
        row = self._one(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
        return _key(row) if row else None

    def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        if tenant_id is None:
            rows = self._all(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id", ())
        else:
            rows = self._all(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id",
                (tenant_id,),
            )
        return [_key(row) for row in rows]

    def revoke_key(self, key_id: str, at: float) -> bool:
        """Mark a key revoked; False if it does not exist or was revoked already."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, key_id),
            )
            return cursor.rowcount == 1

    # -- sandboxes -------------------------------------------------------------

    def insert_sandbox(self, sandbox: SandboxRecord) -> None:
        _check_state(sandbox.state)
        try:
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO sandboxes ({_SANDBOX_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        sandbox.id,
                        sandbox.tenant_id,
                        str(sandbox.state),
                        sandbox.image,
                        _to_json(sandbox.spec),
                        _to_json(sandbox.labels),
                        sandbox.container_id,
                        sandbox.created_at,
                        sandbox.updated_at,
                        sandbox.error,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise _integrity_error(exc, f"sandbox {sandbox.id}", sandbox.tenant_id) from exc

    def get_sandbox(self, sandbox_id: str) -> SandboxRecord | None:
        row = self._one(f"SELECT {_SANDBOX_COLUMNS} FROM sandboxes WHERE id = ?", (sandbox_id,))
        return _sandbox(row) if row else None

    def list_sandboxes(
        self,
        tenant_id: str | None = None,
        state: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[SandboxRecord]:
        """Sandboxes matching every given filter; ``labels`` matches when all its pairs do."""
        where: list[str] = []
        params: list[Any] = []
        if tenant_id is not None:
            where.append("tenant_id = ?")
            params.append(tenant_id)
        if state is not None:
            where.append("state = ?")
            params.append(str(state))
        for name, value in (labels or {}).items():
            # json_each compares the key as data, so any label name is safe here
            # (a json_extract path would need quoting rules of its own).
            where.append(
                "EXISTS (SELECT 1 FROM json_each(sandboxes.labels) AS l"
                " WHERE l.key = ? AND l.value = ? AND l.type = 'text')"
            )
            params.extend((name, value))
        sql = f"SELECT {_SANDBOX_COLUMNS} FROM sandboxes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, id"
        return [_sandbox(row) for row in self._all(sql, params)]

    def update_sandbox(self, sandbox_id: str, **fields: Any) -> SandboxRecord:
        """Change the given columns (and ``updated_at``); returns the record as now stored.

        Raises:
            NotFound: no sandbox has this id.
        """
        unknown = fields.keys() - _SANDBOX_UPDATABLE
        if unknown:
            raise TypeError(f"update_sandbox() cannot set {', '.join(sorted(unknown))}")
        if "state" in fields:
            _check_state(fields["state"])
            fields["state"] = str(fields["state"])
        for name in ("spec", "labels"):
            if name in fields:
                fields[name] = _to_json(fields[name])
        fields.setdefault("updated_at", time.time())
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._tx() as db:
            row = db.execute(
                f"UPDATE sandboxes SET {assignments} WHERE id = ? RETURNING {_SANDBOX_COLUMNS}",
                (*fields.values(), sandbox_id),
            ).fetchone()
        if row is None:
            raise NotFound(f"sandbox {sandbox_id} does not exist")
        return _sandbox(row)

    def delete_sandbox(self, sandbox_id: str) -> bool:
        """Remove a sandbox's row; False if there was none."""
        with self._tx() as db:
            return db.execute("DELETE FROM sandboxes WHERE id = ?", (sandbox_id,)).rowcount == 1

    # -- audit -----------------------------------------------------------------

    def append_audit(self, row: AuditRecord) -> None:
        """Append the next record of the chain and move the head anchor to it.

        The record must follow the stored head (seq one more, prev_hash equal to
        its hash). Anything else means another writer appended first; that raises
        Conflict and the caller reloads the head and tries again, so two writers
        never fork the chain.
        """
        with self._tx() as db:
            # An empty log takes any first link; the audit module starts it from its genesis hash.
            expected = _audit_tip(db) or (0, row.prev_hash)
            if (row.seq - 1, row.prev_hash) != expected:
                raise Conflict(
                    f"audit record {row.seq} does not follow the stored head {expected[0]}"
                )
            db.execute(
                f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.seq,
                    row.ts,
                    row.tenant_id,
                    row.key_id,
                    row.sandbox_id,
                    row.action,
                    _to_json(row.args),
                    row.result,
                    row.error,
                    row.prev_hash,
                    row.hash,
                ),
            )
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_AUDIT_HEAD_KEY, f"{row.seq}:{row.hash}"),
            )

    def last_audit(self) -> AuditRecord | None:
        row = self._one(f"SELECT {_AUDIT_COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1", ())
        return _audit(row) if row else None

    def audit_head(self) -> tuple[int, str] | None:
        """The anchor: (seq, hash) of the newest record ever appended, kept apart from the rows."""
        return _parse_head(self._one("SELECT value FROM meta WHERE key = ?", (_AUDIT_HEAD_KEY,)))

    def audit_tip(self) -> tuple[int, str] | None:
        """The (seq, hash) the next appended record must follow; None for an empty log."""
        with self._lock:
            return _audit_tip(self._db)

    def query_audit(
        self,
        tenant_id: str | None = None,
        sandbox_id: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        after_seq: int | None = None,
    ) -> list[AuditRecord]:
        """Records matching every given filter, oldest first; ``after_seq`` pages on."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("tenant_id = ?", tenant_id),
            ("sandbox_id = ?", sandbox_id),
            ("action = ?", action),
            ("ts >= ?", since),
            ("ts < ?", until),
            ("seq > ?", after_seq),
        ):
            if value is not None:
                where.append(column)
                params.append(value)
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        return [_audit(row) for row in self._all(sql, params)]

    def iter_audit(self) -> Iterator[AuditRecord]:
        """Every record in seq order, read in batches so writers are not held up."""
        after = -1
        while True:
            rows = self._all(
                f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, _AUDIT_BATCH),
            )
            for row in rows:
                yield _audit(row)
            if len(rows) < _AUDIT_BATCH:
                return
            after = rows[-1][0]

    # -- snapshots -------------------------------------------------------------

    def insert_snapshot(self, snapshot: SnapshotRecord) -> None:
        _check_snapshot_state(snapshot.state)
        try:
            with self._tx() as db:
                db.execute(
                    f"INSERT INTO snapshots ({_SNAPSHOT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        snapshot.id,
                        snapshot.tenant_id,
                        snapshot.sandbox_id,
                        snapshot.parent_id,
                        snapshot.name,
                        _to_json(snapshot.labels),
                        snapshot.state,
                        snapshot.image,
                        snapshot.image_id,
                        snapshot.size_bytes,
                        snapshot.total_bytes,
                        _to_json(snapshot.spec),
                        snapshot.created_at,
                        snapshot.updated_at,
                        snapshot.error,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise _integrity_error(exc, f"snapshot {snapshot.id}", snapshot.tenant_id) from exc

    def get_snapshot(self, snapshot_id: str) -> SnapshotRecord | None:
        row = self._one(f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ?", (snapshot_id,))
        return _snapshot(row) if row else None

    def list_snapshots(
        self,
        tenant_id: str | None = None,
        state: str | None = None,
        sandbox_id: str | None = None,
        parent_id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[SnapshotRecord]:
        """Snapshots matching every given filter, oldest first."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("tenant_id = ?", tenant_id),
            ("state = ?", state),
            ("sandbox_id = ?", sandbox_id),
            ("parent_id = ?", parent_id),
        ):
            if value is not None:
                where.append(column)
                params.append(value)
        for name, value in (labels or {}).items():
            where.append(
                "EXISTS (SELECT 1 FROM json_each(snapshots.labels) AS l"
                " WHERE l.key = ? AND l.value = ? AND l.type = 'text')"
            )
            params.extend((name, value))
        sql = f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, id"
        return [_snapshot(row) for row in self._all(sql, params)]

    def update_snapshot(self, snapshot_id: str, **fields: Any) -> SnapshotRecord:
        """Change the given columns (and ``updated_at``); returns the record as now stored.

        Raises:
            NotFound: no snapshot has this id.
        """
        unknown = fields.keys() - _SNAPSHOT_UPDATABLE
        if unknown:
            raise TypeError(f"update_snapshot() cannot set {', '.join(sorted(unknown))}")
        if "state" in fields:
            _check_snapshot_state(fields["state"])
        for name in ("spec", "labels"):
            if name in fields:
                fields[name] = _to_json(fields[name])
        fields.setdefault("updated_at", time.time())
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._tx() as db:
            row = db.execute(
                f"UPDATE snapshots SET {assignments} WHERE id = ? RETURNING {_SNAPSHOT_COLUMNS}",
                (*fields.values(), snapshot_id),
            ).fetchone()
        if row is None:
            raise NotFound(f"snapshot {snapshot_id} does not exist")
        return _snapshot(row)

    def delete_snapshot(self, snapshot_id: str, reparent_to: str | None = None) -> bool:
        """Remove a snapshot's row, pointing its children at ``reparent_to``; False if there was none."""
        with self._tx() as db:
            db.execute("UPDATE snapshots SET parent_id = ? WHERE parent_id = ?", (reparent_to, snapshot_id))
            return db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot_id,)).rowcount == 1

    def sandboxes_from_snapshot(self, snapshot_id: str) -> list[str]:
        """Ids of the sandboxes whose filesystem descends from this snapshot (forks and restores)."""
        rows = self._all(
            "SELECT id FROM sandboxes WHERE json_extract(spec, '$.snapshot_id') = ? ORDER BY created_at, id",
            (snapshot_id,),
        )
        return [row[0] for row in rows]

    # -- lifecycle defaults ----------------------------------------------------

    def get_lifecycle_defaults(self, tenant_id: str) -> LifecycleDefaults | None:
        row = self._one(
            "SELECT tenant_id, idle_timeout_s, idle_action, max_lifetime_s, updated_at"
            " FROM lifecycle_defaults WHERE tenant_id = ?",
            (tenant_id,),
        )
        return LifecycleDefaults(*row) if row else None

    def list_lifecycle_defaults(self) -> list[LifecycleDefaults]:
        rows = self._all(
            "SELECT tenant_id, idle_timeout_s, idle_action, max_lifetime_s, updated_at FROM lifecycle_defaults",
            (),
        )
        return [LifecycleDefaults(*row) for row in rows]

    def set_lifecycle_defaults(self, defaults: LifecycleDefaults) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO lifecycle_defaults"
                    " (tenant_id, idle_timeout_s, idle_action, max_lifetime_s, updated_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET"
                    " idle_timeout_s = excluded.idle_timeout_s, idle_action = excluded.idle_action,"
                    " max_lifetime_s = excluded.max_lifetime_s, updated_at = excluded.updated_at",
                    (
                        defaults.tenant_id,
                        defaults.idle_timeout_s,
                        defaults.idle_action,
                        defaults.max_lifetime_s,
                        defaults.updated_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise _integrity_error(exc, "lifecycle defaults", defaults.tenant_id) from exc

    # -- egress ----------------------------------------------------------------

    def insert_sandbox_egress(self, row: SandboxEgress, placeholders: Mapping[str, str]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO sandbox_egress (sandbox_id, tenant_id, policy, ip, attached_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (row.sandbox_id, row.tenant_id, _policy_json(row.policy), row.ip, row.attached_at, row.updated_at),
            )
            db.executemany(
                "INSERT INTO sandbox_secrets (sandbox_id, name, placeholder) VALUES (?, ?, ?)",
                [(row.sandbox_id, name, placeholder) for name, placeholder in placeholders.items()],
            )

    def get_sandbox_egress(self, sandbox_id: str) -> SandboxEgress | None:
        row = self._one(f"SELECT {_EGRESS_COLUMNS} FROM sandbox_egress WHERE sandbox_id = ?", (sandbox_id,))
        return _sandbox_egress(row) if row else None

    def list_sandbox_egress(self, *, attached: bool | None = None, tenant_id: str | None = None) -> list[SandboxEgress]:
        where, params = [], []
        if attached is not None:
            where.append("ip IS NOT NULL" if attached else "ip IS NULL")
        if tenant_id is not None:
            where.append("tenant_id = ?")
            params.append(tenant_id)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._all(f"SELECT {_EGRESS_COLUMNS} FROM sandbox_egress{clause} ORDER BY sandbox_id", params)
        return [_sandbox_egress(row) for row in rows]

    def set_sandbox_policy(self, sandbox_id: str, policy: list[dict[str, Any]] | None, at: float) -> SandboxEgress:
        with self._tx() as db:
            changed = db.execute(
                "UPDATE sandbox_egress SET policy = ?, updated_at = ? WHERE sandbox_id = ?",
                (_policy_json(policy), at, sandbox_id),
            ).rowcount
        if not changed:
            raise NotFound(f"no egress settings for sandbox {sandbox_id}")
        found = self.get_sandbox_egress(sandbox_id)
        assert found is not None
        return found

    def set_sandbox_ip(self, sandbox_id: str, ip: str | None, at: float) -> None:
        """Record the sandbox's address on the sandbox network (None when it has none)."""
        with self._tx() as db:
            db.execute(
                "UPDATE sandbox_egress SET ip = ?, attached_at = ?, updated_at = ? WHERE sandbox_id = ?",
                (ip, at if ip else None, at, sandbox_id),
            )

    def delete_sandbox_egress(self, sandbox_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sandbox_egress WHERE sandbox_id = ?", (sandbox_id,))
            db.execute("DELETE FROM sandbox_secrets WHERE sandbox_id = ?", (sandbox_id,))

    def sandbox_placeholders(self, sandbox_id: str) -> dict[str, str]:
        rows = self._all(
            "SELECT name, placeholder FROM sandbox_secrets WHERE sandbox_id = ? ORDER BY name", (sandbox_id,)
        )
        return dict(rows)

    def attached_placeholders(self) -> dict[str, dict[str, str]]:
        """Sandbox id -> secret name -> placeholder, for every sandbox with an address."""
        rows = self._all(
            "SELECT s.sandbox_id, s.name, s.placeholder FROM sandbox_secrets s"
            " JOIN sandbox_egress e ON e.sandbox_id = s.sandbox_id WHERE e.ip IS NOT NULL ORDER BY s.name",
            (),
        )
        found: dict[str, dict[str, str]] = {}
        for sandbox_id, name, placeholder in rows:
            found.setdefault(sandbox_id, {})[name] = placeholder
        return found

    def replace_placeholders(self, sandbox_id: str, placeholders: Mapping[str, str]) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sandbox_secrets WHERE sandbox_id = ?", (sandbox_id,))
            db.executemany(
                "INSERT INTO sandbox_secrets (sandbox_id, name, placeholder) VALUES (?, ?, ?)",
                [(sandbox_id, name, placeholder) for name, placeholder in placeholders.items()],
            )

    def get_tenant_egress_policy(self, tenant_id: str) -> list[dict[str, Any]] | None:
        row = self._one("SELECT policy FROM tenant_egress WHERE tenant_id = ?", (tenant_id,))
        return json.loads(row[0]) if row else None

    def tenant_egress_policies(self) -> dict[str, list[dict[str, Any]]]:
        return {tenant: json.loads(policy) for tenant, policy in self._all("SELECT tenant_id, policy FROM tenant_egress", ())}

    def set_tenant_egress_policy(self, tenant_id: str, policy: list[dict[str, Any]], at: float) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO tenant_egress (tenant_id, policy, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (tenant_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
                    (tenant_id, _policy_json(policy), at),
                )
        except sqlite3.IntegrityError as exc:
            raise _integrity_error(exc, "egress policy", tenant_id) from exc

    def put_secret(self, secret: SecretRecord) -> bool:
        """Insert or replace a secret (keeping its creation time); True when it is new."""
        try:
            with self._tx() as db:
                existed = db.execute(
                    "SELECT 1 FROM secrets WHERE tenant_id = ? AND name = ?", (secret.tenant_id, secret.name)
                ).fetchone()
                db.execute(
                    "INSERT INTO secrets (tenant_id, name, sealed, hosts, inject, allow_in_body, allow_in_query,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (tenant_id, name) DO UPDATE SET sealed = excluded.sealed, hosts = excluded.hosts,"
                    " inject = excluded.inject, allow_in_body = excluded.allow_in_body,"
                    " allow_in_query = excluded.allow_in_query, updated_at = excluded.updated_at",
                    (
                        secret.tenant_id,
                        secret.name,
                        secret.sealed,
                        _to_json(secret.hosts),
                        None if secret.inject is None else _to_json(secret.inject),
                        int(secret.allow_in_body),
                        int(secret.allow_in_query),
                        secret.created_at,
                        secret.updated_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise _integrity_error(exc, "secret", secret.tenant_id) from exc
        return existed is None

    def get_secret(self, tenant_id: str, name: str) -> SecretRecord | None:
        row = self._one(f"SELECT {_SECRET_COLUMNS} FROM secrets WHERE tenant_id = ? AND name = ?", (tenant_id, name))
        return _secret(row) if row else None

    def list_secrets(self, tenant_id: str | None = None) -> list[SecretRecord]:
        if tenant_id is None:
            rows = self._all(f"SELECT {_SECRET_COLUMNS} FROM secrets ORDER BY tenant_id, name", ())
        else:
            rows = self._all(f"SELECT {_SECRET_COLUMNS} FROM secrets WHERE tenant_id = ? ORDER BY name", (tenant_id,))
        return [_secret(row) for row in rows]

    def delete_secret(self, tenant_id: str, name: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM secrets WHERE tenant_id = ? AND name = ?", (tenant_id, name)).rowcount > 0

    def append_egress_log(self, records: list[EgressLogRecord], position_key: str, position: str) -> None:
        """Insert records and move the reader's position in one transaction: each line lands exactly once."""
        with self._tx() as db:
            db.executemany(
                f"INSERT INTO egress_log ({_EGRESS_LOG_FIELDS}) VALUES ({', '.join('?' * 16)})",
                [
                    (r.ts, r.sandbox_id, r.tenant_id, r.client_ip, r.method, r.scheme, r.host, r.port, r.path,
                     r.status, r.bytes_out, r.bytes_in, r.duration_ms, _to_json(r.secrets), int(r.blocked), r.reason)
                    for r in records
                ],
            )
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (position_key, position),
            )

    def query_egress_log(
        self,
        sandbox_id: str,
        *,
        limit: int = 100,
        before: int | None = None,
        blocked: bool | None = None,
        host: str | None = None,
        since: float | None = None,
    ) -> list[EgressLogRecord]:
        """Newest first; ``before`` is an id to page back from."""
        where, params = ["sandbox_id = ?"], [sandbox_id]
        if before is not None:
            where.append("id < ?")
            params.append(before)
        if blocked is not None:
            where.append("blocked = ?")
            params.append(int(blocked))
        if host is not None:
            where.append("host = ?")
            params.append(host)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        rows = self._all(
            f"SELECT id, {_EGRESS_LOG_FIELDS} FROM egress_log WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [_egress_log(row) for row in rows]

    # -- meta ------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- plumbing --------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, params: Any) -> tuple[Any, ...] | None:
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(_MIGRATIONS):
                raise SandboxdError(
                    f"the database {self.path} has schema version {version}, newer than the "
                    f"{len(_MIGRATIONS)} this sandboxd knows: run a newer sandboxd"
                )
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executescript(script)
                    # PRAGMA takes no parameters; number is our own int.
                    self._db.execute(f"PRAGMA user_version = {number}")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only: it holds key hashes and the audit log.

    SQLite gives its -wal and -shm files the mode of the database file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


def _check_state(state: str) -> None:
    if state not in SANDBOX_STATES:
        known = ", ".join(sorted(SANDBOX_STATES))
        raise ValueError(f"unknown sandbox state {state!r}; known: {known}")


def _check_snapshot_state(state: str) -> None:
    if state not in SNAPSHOT_STATES:
        raise ValueError(f"unknown snapshot state {state!r}; known: {', '.join(sorted(SNAPSHOT_STATES))}")


def _integrity_error(exc: sqlite3.IntegrityError, what: str, tenant_id: str) -> SandboxdError:
    if "FOREIGN KEY" in str(exc):
        return NotFound(f"tenant {tenant_id} does not exist")
    return AlreadyExists(f"{what} already exists")


def _to_json(value: Any) -> str:
    # ASCII escapes keep any str storable, lone surrogates from JSON input included.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _audit_tip(db: sqlite3.Connection) -> tuple[int, str] | None:
    """The anchor, unless rows go past it (an anchor lost or never written).

    When rows were cut off after the anchor, the tip stays at the anchor: new
    records then follow the vanished ones, and the gap stays visible to verify.
    """
    anchor = _parse_head(
        db.execute("SELECT value FROM meta WHERE key = ?", (_AUDIT_HEAD_KEY,)).fetchone()
    )
    last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    if anchor is not None and (last is None or anchor[0] >= last[0]):
        return anchor
    return (last[0], last[1]) if last is not None else None


def _parse_head(row: tuple[Any, ...] | None) -> tuple[int, str] | None:
    if row is None:
        return None
    seq, _, digest = row[0].partition(":")
    return int(seq), digest


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, tenant_id, name, secret_hash, admin, created_at, revoked_at = row
    return ApiKey(key_id, tenant_id, name, secret_hash, bool(admin), created_at, revoked_at)


def _sandbox(row: tuple[Any, ...]) -> SandboxRecord:
    sid, tenant_id, state, image, spec, labels, container_id, created_at, updated_at, error = row
    return SandboxRecord(
        sid,
        tenant_id,
        state,
        image,
        json.loads(spec),
        json.loads(labels),
        container_id,
        created_at,
        updated_at,
        error,
    )


def _audit(row: tuple[Any, ...]) -> AuditRecord:
    seq, ts, tenant_id, key_id, sandbox_id, action, args, result, error, prev_hash, digest = row
    args = json.loads(args)
    return AuditRecord(
        seq, ts, tenant_id, key_id, sandbox_id, action, args, result, error, prev_hash, digest
    )


def _snapshot(row: tuple[Any, ...]) -> SnapshotRecord:
    (sid, tenant_id, sandbox_id, parent_id, name, labels, state, image, image_id, size_bytes,
     total_bytes, spec, created_at, updated_at, error) = row
    return SnapshotRecord(
        sid,
        tenant_id,
        sandbox_id,
        parent_id,
        name,
        json.loads(labels),
        state,
        image,
        image_id,
        size_bytes,
        total_bytes,
        json.loads(spec),
        created_at,
        updated_at,
        error,
    )


# --- egress rows ------------------------------------------------------------------------------

_EGRESS_COLUMNS: Final = "sandbox_id, tenant_id, policy, ip, attached_at, updated_at"
_SECRET_COLUMNS: Final = (
    "tenant_id, name, sealed, hosts, inject, allow_in_body, allow_in_query, created_at, updated_at"
)
_EGRESS_LOG_FIELDS: Final = (
    "ts, sandbox_id, tenant_id, client_ip, method, scheme, host, port, path, status,"
    " bytes_out, bytes_in, duration_ms, secrets, blocked, reason"
)


def _policy_json(policy: list[dict[str, Any]] | None) -> str | None:
    return None if policy is None else json.dumps(policy, separators=(",", ":"))


def _sandbox_egress(row: tuple[Any, ...]) -> SandboxEgress:
    sandbox_id, tenant_id, policy, ip, attached_at, updated_at = row
    return SandboxEgress(sandbox_id, tenant_id, None if policy is None else json.loads(policy), ip, attached_at, updated_at)


def _secret(row: tuple[Any, ...]) -> SecretRecord:
    tenant_id, name, sealed, hosts, inject, body, query, created_at, updated_at = row
    return SecretRecord(
        tenant_id, name, bytes(sealed), json.loads(hosts), None if inject is None else json.loads(inject),
        bool(body), bool(query), created_at, updated_at,
    )


def _egress_log(row: tuple[Any, ...]) -> EgressLogRecord:
    values = list(row)
    values[14] = json.loads(values[14])
    values[15] = bool(values[15])
    return EgressLogRecord(*values)
