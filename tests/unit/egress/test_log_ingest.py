"""Ingesting the proxy's audit lines: each exactly once, whatever stops in between."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxd.egress.log import EgressLogIngester, parse_line
from sandboxd.store import Store


def line(n: int, sandbox_id: str = "sbx_a", **extra: object) -> str:
    record = {
        "ts": "2025-01-01T12:00:00.000Z", "sandbox_id": sandbox_id, "tenant_id": "tnt_a", "client_ip": "10.0.0.2",
        "method": "GET", "scheme": "https", "host": "api.example.com", "port": 443, "path": f"/r{n}",
        "status": 200, "bytes_out": 0, "bytes_in": 10, "duration_ms": 1.5, "secrets": [], "blocked": False,
        "reason": None, **extra,
    }
    return json.dumps(record) + "\n"


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as store:
        yield store


def paths(store: Store, sandbox_id: str = "sbx_a") -> list[str]:
    return sorted(r.path or "" for r in store.query_egress_log(sandbox_id, limit=1000))


def test_lines_are_stored_once_and_a_half_written_line_waits(store: Store, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text(line(1) + line(2) + line(3)[:20])
    touched: list[str] = []
    ingester = EgressLogIngester(store, audit, on_record=touched.append)
    assert ingester.ingest() == 2
    assert ingester.ingest() == 0
    with audit.open("a") as out:
        out.write(line(3)[20:])
    assert ingester.ingest() == 1
    assert paths(store) == ["/r1", "/r2", "/r3"]


def test_a_new_reader_resumes_where_the_last_one_stopped(store: Store, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text(line(1) + line(2))
    EgressLogIngester(store, audit).ingest()
    with audit.open("a") as out:
        out.write(line(3))
    assert EgressLogIngester(store, audit).ingest() == 1
    assert paths(store) == ["/r1", "/r2", "/r3"]


def test_a_replaced_file_is_read_from_its_start(store: Store, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text(line(1) + line(2))
    ingester = EgressLogIngester(store, audit)
    ingester.ingest()
    audit.unlink()
    audit.write_text(line(3))
    assert ingester.ingest() == 1
    assert paths(store) == ["/r1", "/r2", "/r3"]


def test_rotation_finishes_the_old_file_before_the_new_one(store: Store, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text(line(1) * 1 + line(2))
    ingester = EgressLogIngester(store, audit, rotate_bytes=64)
    assert ingester.ingest() == 2
    assert ingester.ingest() == 0 and not audit.exists(), "fully read and past the size: rotated"
    rotated = tmp_path / "audit.jsonl.1"
    with rotated.open("a") as out:  # the proxy wrote on before noticing the rename
        out.write(line(3))
    audit.write_text(line(4))  # ... then reopened the path
    while ingester.ingest():
        pass
    assert paths(store) == ["/r1", "/r2", "/r3", "/r4"]


def test_lines_that_are_not_records_are_skipped(store: Store, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text("not json\n" + json.dumps({"no": "ts"}) + "\n" + line(1))
    assert EgressLogIngester(store, audit).ingest() == 3
    assert paths(store) == ["/r1"]


def test_unknown_clients_are_kept_under_no_sandbox(store: Store, tmp_path: Path) -> None:
    record = parse_line(line(1, sandbox_id=None, blocked=True, reason="unknown client").encode())  # type: ignore[arg-type]
    assert record is not None and record.sandbox_id is None and record.blocked
    assert record.ts == pytest.approx(1735732800.0)


def test_sandboxes_seen_are_reported(store: Store, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text(line(1, "sbx_a") + line(2, "sbx_b") + line(3, "sbx_a"))
    ingester = EgressLogIngester(store, audit)
    ingester.ingest()
    assert ingester._seen == {"sbx_a", "sbx_b"}
