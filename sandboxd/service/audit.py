"""The audit log: one hash-chained record for every state-changing call.

Each record's hash covers its predecessor's hash and all of its own fields
(seq included), so changing a record breaks its own hash, and removing one
breaks the link or the seq sequence after it. The newest (seq, hash) is also
kept as an anchor in the store's ``meta`` table, written in the same transaction
as the record: a tail cut off the ``audit`` table alone is detectable against it.
Someone able to rewrite the whole database file can rewrite the anchor too;
detecting that needs the head exported elsewhere (``AuditLog.head``).

Arguments are summarised before they are stored (``summarize_args``): names that
look secret and file contents are dropped, long values cut, so callers can pass
request fields as they come.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Final

from sandboxd.errors import Conflict, Forbidden, InvalidRequest, SandboxdError
from sandboxd.store import AuditRecord, Store

if TYPE_CHECKING:
    from sandboxd.service.tenants import Principal

__all__ = [
    "GENESIS_HASH",
    "AuditLog",
    "PendingRecord",
    "VerifyReport",
    "canonical_json",
    "record_hash",
    "summarize_args",
]

log = logging.getLogger(__name__)

GENESIS_HASH: Final = "0" * 64
MAX_QUERY_LIMIT: Final = 1000
MAX_STRING_CHARS: Final = 200
MAX_LIST_ITEMS: Final = 20
MAX_DEPTH: Final = 4

# A field is dropped when one of the words of its name is here ("api_key",
# "stdin", "fileContent"), unless its last word says it only names or counts
# something ("secret_names", "key_id", "content_length").
_SENSITIVE_WORDS: Final = frozenset(
    {
        "secret", "secrets", "password", "passwd", "passphrase", "token", "tokens",
        "key", "keys", "apikey", "value", "values", "content", "contents", "data",
        "stdin", "body", "credential", "credentials", "authorization", "auth", "cookie",
        "private", "signature",
    }
)
_HARMLESS_LAST_WORDS: Final = frozenset(
    {"id", "ids", "name", "names", "count", "length", "size", "type", "types"}
)
# Environment variables often carry secrets in their values: only their names are kept.
_ENV_NAMES: Final = frozenset({"env", "environ", "environment"})
_WORD_SPLIT: Final = re.compile(r"[^a-zA-Z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_CONFLICT_RETRIES: Final = 3


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


@dataclass(slots=True)
class PendingRecord:
    """What ``AuditLog.recording`` will write; the body may fill in what it learns."""

    sandbox_id: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    tenant_id: str | None = None


def canonical_json(value: Any) -> str:
    """The one serialisation hashes are computed over: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def record_hash(
    *,
    seq: int,
    ts: float,
    tenant_id: str | None,
    key_id: str | None,
    sandbox_id: str | None,
    action: str,
    args: Mapping[str, Any],
    result: str,
    error: str | None,
    prev_hash: str,
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "ts": ts,
            "tenant_id": tenant_id,
            "key_id": key_id,
            "sandbox_id": sandbox_id,
            "action": action,
            "args": args,
            "result": result,
            "error": error,
        }
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def summarize_args(args: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``args`` safe to keep forever: no secrets, no contents, nothing huge.

    Drops fields whose name looks sensitive (see ``_SENSITIVE_WORDS``), keeps only
    the names of environment variables, cuts strings to 200 characters and lists
    to 20 items, and turns anything that is not JSON into a short description.
    """
    if not args:
        return {}
    return _summarize_mapping(args, depth=0)


class AuditLog:
    """Appends records to the chain, answers queries, and verifies the chain."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._load_head()

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest record: worth exporting to detect a rewritten database."""
        with self._lock:
            return self._seq, self._hash

    def record(
        self,
        principal: Principal | None,
        action: str,
        *,
        sandbox_id: str | None = None,
        args: Mapping[str, Any] | None = None,
        result: str = "ok",
        error: str | None = None,
        tenant_id: str | None = None,
    ) -> AuditRecord:
        """Append one record. ``principal`` None means sandboxd itself (start-up, reconcile);
        ``tenant_id`` then says whose resource it acted on."""
        if principal is not None:
            tenant_id, key_id = principal.tenant_id, principal.key_id
        else:
            key_id = None
        summary = summarize_args(args)
        if error is not None:
            error = _clean(error)
        if sandbox_id is not None:
            sandbox_id = _clean(sandbox_id)
        with self._lock:
            for _ in range(_CONFLICT_RETRIES):
                seq, prev_hash, ts = self._seq + 1, self._hash, time.time()
                digest = record_hash(
                    seq=seq, ts=ts, tenant_id=tenant_id, key_id=key_id, sandbox_id=sandbox_id,
                    action=action, args=summary, result=result, error=error, prev_hash=prev_hash,
                )
                row = AuditRecord(
                    seq, ts, tenant_id, key_id, sandbox_id, action, summary, result, error,
                    prev_hash, digest,
                )
                try:
                    self._store.append_audit(row)
                except Conflict:
                    # Another process appended to the same database: follow its head.
                    self._load_head()
                    continue
                self._seq, self._hash = seq, digest
                return row
        raise SandboxdError("could not append to the audit log: its head keeps moving")

    @contextmanager
    def recording(
        self,
        principal: Principal | None,
        action: str,
        *,
        sandbox_id: str | None = None,
        args: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> Iterator[PendingRecord]:
        """Record ``action`` when the block ends: "ok", or "error" with the error's message.

        The block may set ``sandbox_id`` or add to ``args`` on the yielded record
        (say, the id of a sandbox it just created). Works in async functions too.
        """
        pending = PendingRecord(sandbox_id=sandbox_id, args=dict(args or {}), tenant_id=tenant_id)
        try:
            yield pending
        except SandboxdError as exc:
            self._record_pending(principal, action, pending, "error", f"{exc.code}: {exc.message}")
            raise
        except asyncio.CancelledError:
            self._record_pending(principal, action, pending, "error", "cancelled")
            raise
        except BaseException:
            self._record_pending(
                principal, action, pending, "error", "internal: unexpected failure"
            )
            raise
        self._record_pending(principal, action, pending, "ok", None)

    def query(
        self,
        principal: Principal,
        sandbox_id: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        after_seq: int | None = None,
        tenant_id: str | None = None,
    ) -> list[AuditRecord]:
        """Records oldest first. A tenant's key sees its own tenant's records only;
        an admin key sees all, or one tenant's with ``tenant_id``.

        Raises:
            Forbidden: a non-admin key asked for another tenant's records.
            InvalidRequest: limit outside 1..1000.
        """
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise InvalidRequest(f"limit must be between 1 and {MAX_QUERY_LIMIT}, not {limit}")
        if not principal.admin:
            if tenant_id is not None and tenant_id != principal.tenant_id:
                raise Forbidden("only an admin key may read another tenant's audit records")
            tenant_id = principal.tenant_id
        return self._store.query_audit(
            tenant_id=tenant_id,
            sandbox_id=sandbox_id,
            action=action,
            since=since,
            until=until,
            limit=limit,
            after_seq=after_seq,
        )

    def verify(self) -> VerifyReport:
        """Walk the whole chain and report the first place it breaks."""
        anchor = self._store.audit_head()
        checked = 0
        prev: AuditRecord | None = None
        for rec in self._store.iter_audit():
            problem = _check_link(prev, rec)
            if problem is not None:
                return VerifyReport(False, checked, *problem)
            if anchor is not None and rec.seq == anchor[0] and rec.hash != anchor[1]:
                return VerifyReport(
                    False, checked, rec.seq,
                    f"record {rec.seq} is not the record that was written there: its hash differs "
                    "from the head anchor recorded when it was appended",
                )
            checked += 1
            prev = rec
        last_seq = prev.seq if prev is not None else 0
        if anchor is not None and anchor[0] > last_seq:
            return VerifyReport(
                False, checked, last_seq + 1,
                f"records {last_seq + 1} to {anchor[0]} are missing: the log ends at seq "
                f"{last_seq} but records up to seq {anchor[0]} were written (tail removed)",
            )
        if anchor is None and prev is not None:
            return VerifyReport(
                False, checked, None,
                "the head anchor (meta key audit_head) is missing, so a removed tail would "
                "go unnoticed; the records present are consistent",
            )
        return VerifyReport(True, checked)

    # -- internals ---------------------------------------------------------------

    def _load_head(self) -> None:
        tip = self._store.audit_tip()
        last = self._store.last_audit()
        if tip is not None and last is not None and tip[0] > last.seq:
            log.warning(
                "audit log records %d to %d are missing; new records continue after %d so "
                "'sandboxd audit verify' keeps reporting the gap",
                last.seq + 1, tip[0], tip[0],
            )
        self._seq, self._hash = tip if tip is not None else (0, GENESIS_HASH)

    def _record_pending(
        self,
        principal: Principal | None,
        action: str,
        pending: PendingRecord,
        result: str,
        error: str | None,
    ) -> None:
        self.record(
            principal, action, sandbox_id=pending.sandbox_id, args=pending.args,
            result=result, error=error, tenant_id=pending.tenant_id,
        )


def _check_link(prev: AuditRecord | None, rec: AuditRecord) -> tuple[int, str] | None:
    """(first bad seq, what is wrong) if ``rec`` is not a sound successor of ``prev``."""
    recomputed = record_hash(
        seq=rec.seq, ts=rec.ts, tenant_id=rec.tenant_id, key_id=rec.key_id,
        sandbox_id=rec.sandbox_id, action=rec.action, args=rec.args, result=rec.result,
        error=rec.error, prev_hash=rec.prev_hash,
    )
    if recomputed != rec.hash:
        return rec.seq, (
            f"record {rec.seq} was changed after it was written: "
            "its hash does not match its content"
        )
    if prev is None:
        if rec.seq != 1:
            return 1, f"records 1 to {rec.seq - 1} are missing: the log starts at seq {rec.seq}"
        if rec.prev_hash != GENESIS_HASH:
            return 1, "record 1 does not start the chain: its prev_hash is not the genesis hash"
        return None
    if rec.seq != prev.seq + 1:
        return prev.seq + 1, (
            f"records between seq {prev.seq} and seq {rec.seq} are missing (deleted)"
            if rec.seq > prev.seq + 1
            else f"record {rec.seq} is out of order after record {prev.seq}"
        )
    if rec.prev_hash != prev.hash:
        return prev.seq, (
            f"the chain breaks between seq {prev.seq} and seq {rec.seq}: record {prev.seq} "
            f"was rewritten (hash recomputed) or replaced"
        )
    return None


def _summarize_mapping(args: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for raw_name, value in args.items():
        name = _clean(str(raw_name))
        if _is_sensitive(name):
            continue
        if name.lower() in _ENV_NAMES and isinstance(value, Mapping):
            summary[name] = _summarize_value(sorted(str(k) for k in value), depth + 1)
            continue
        summary[name] = _summarize_value(value, depth + 1)
    return summary


def _summarize_value(value: Any, depth: int) -> Any:
    if isinstance(value, enum.Enum):
        return _summarize_value(value.value, depth)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        value = _clean(value)
        if len(value) <= MAX_STRING_CHARS:
            return value
        return f"{value[:MAX_STRING_CHARS]}... ({len(value) - MAX_STRING_CHARS} more chars)"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, PurePath):
        return _summarize_value(str(value), depth)
    if depth > MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, Mapping):
        return _summarize_mapping(value, depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _summarize_mapping(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth
        )
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        dumped = model_dump()
        if isinstance(dumped, Mapping):
            return _summarize_mapping(dumped, depth)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else list(value)
        kept = [_summarize_value(item, depth + 1) for item in items[:MAX_LIST_ITEMS]]
        if len(items) > MAX_LIST_ITEMS:
            kept.append(f"... ({len(items) - MAX_LIST_ITEMS} more items)")
        return kept
    # Never str() an unknown object: its repr may carry anything, secrets included.
    return f"<{type(value).__name__}>"


def _clean(text: str) -> str:
    """Replace lone surrogates (JSON lets "\\ud800" through), which UTF-8 cannot encode."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


@functools.lru_cache(maxsize=1024)
def _is_sensitive(name: str) -> bool:
    words = [word.lower() for word in _WORD_SPLIT.split(name) if word]
    if not words:
        return False
    if words[-1] in _HARMLESS_LAST_WORDS and len(words) > 1:
        return False
    return any(word in _SENSITIVE_WORDS for word in words)
