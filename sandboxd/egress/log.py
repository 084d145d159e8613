"""The proxy's audit lines, ingested into the store's egress log exactly once.

The proxy appends one JSON line per request to a file (``egress_proxy.audit``).
A background task reads what is new every quarter second and, in one
transaction, inserts the records and moves its position (file identity and
byte offset) in the store: a daemon stopped at any point neither loses a line
nor counts one twice. Only whole lines are read; a line still being written
waits for the next round.

When the file passes ``rotate_bytes`` and everything in it is ingested, it is
renamed to ``<name>.1``. The proxy notices within a second and starts a new
file; lines it wrote to the renamed one meanwhile are read from there before
the new file is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sandboxd.store import EgressLogRecord, Store

_log = logging.getLogger(__name__)

POSITION_KEY = "egress_audit_position"
_READ_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Position:
    inode: int
    offset: int

    def dumps(self) -> str:
        return json.dumps({"inode": self.inode, "offset": self.offset})

    @classmethod
    def loads(cls, text: str | None) -> Position | None:
        if not text:
            return None
        raw = json.loads(text)
        return cls(int(raw["inode"]), int(raw["offset"]))


def parse_line(line: bytes) -> EgressLogRecord | None:
    """One audit line as a record; None for a line that is not one (logged, then skipped)."""
    try:
        raw: dict[str, Any] = json.loads(line)
        ts = datetime.fromisoformat(str(raw["ts"]).replace("Z", "+00:00")).timestamp()
        return EgressLogRecord(
            id=None,
            ts=ts,
            sandbox_id=raw.get("sandbox_id"),
            tenant_id=raw.get("tenant_id"),
            client_ip=raw.get("client_ip"),
            method=raw.get("method"),
            scheme=raw.get("scheme"),
            host=raw.get("host"),
            port=raw.get("port"),
            path=raw.get("path"),
            status=raw.get("status"),
            bytes_out=int(raw.get("bytes_out") or 0),
            bytes_in=int(raw.get("bytes_in") or 0),
            duration_ms=raw.get("duration_ms"),
            secrets=[str(name) for name in raw.get("secrets") or []],
            blocked=bool(raw.get("blocked")),
            reason=raw.get("reason"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        _log.warning("egress audit: skipping a line that is not a record (%s)", exc)
        return None


class EgressLogIngester:
    def __init__(
        self,
        store: Store,
        path: Path,
        *,
        on_record: Callable[[str], None] | None = None,
        rotate_bytes: int = 64 << 20,
        poll_s: float = 0.25,
    ) -> None:
        self._store = store
        self.path = path
        self._rotated = path.with_name(path.name + ".1")
        self._on_record = on_record
        self._rotate_bytes = rotate_bytes
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        # Sandboxes seen in the last round; reported on the event loop, not the reading thread.
        self._seen: set[str] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="egress-log")

    async def stop(self) -> None:
        """Stop the task after one last round, so what the proxy wrote before it stopped is kept."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.ingest)

    async def _run(self) -> None:
        while True:
            try:
                count = await asyncio.to_thread(self.ingest)
            except Exception:
                _log.exception("egress audit: ingestion failed; retrying")
                count = 0
            seen, self._seen = self._seen, set()
            if self._on_record is not None:
                for sandbox_id in seen:
                    self._on_record(sandbox_id)
            if count == 0:
                await asyncio.sleep(self._poll_s)

    def ingest(self) -> int:
        """Read and store what is new; returns how many lines were consumed (0: nothing new)."""
        position = Position.loads(self._store.get_meta(POSITION_KEY))
        current = _stat(self.path)
        if position is not None and (current is None or current.st_ino != position.inode):
            # Our file was rotated away: finish it first, wherever it is now.
            rotated = _stat(self._rotated)
            if rotated is not None and rotated.st_ino == position.inode:
                consumed = self._consume(self._rotated, position)
                if consumed:
                    return consumed
            if current is None:
                return 0
            position = None
        if current is None:
            return 0
        if position is None or position.offset > current.st_size:
            position = Position(current.st_ino, 0)
            self._store.set_meta(POSITION_KEY, position.dumps())
        consumed = self._consume(self.path, position)
        if consumed == 0 and current.st_size >= self._rotate_bytes and position.offset == current.st_size:
            os.replace(self.path, self._rotated)
        return consumed

    def _consume(self, path: Path, position: Position) -> int:
        with open(path, "rb") as source:
            if os.fstat(source.fileno()).st_ino != position.inode:
                return 0
            source.seek(position.offset)
            chunk = source.read(_READ_BYTES)
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0
        lines = chunk[: end + 1].splitlines()
        records = [r for r in (parse_line(line) for line in lines if line.strip()) if r is not None]
        moved = Position(position.inode, position.offset + end + 1)
        self._store.append_egress_log(records, POSITION_KEY, moved.dumps())
        self._seen.update(r.sandbox_id for r in records if r.sandbox_id)
        return len(lines)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
