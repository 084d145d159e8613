import asyncio
import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxd import ids
from sandboxd.errors import Forbidden, InvalidRequest, NotFound
from sandboxd.service.audit import GENESIS_HASH, AuditLog, record_hash, summarize_args
from sandboxd.service.tenants import Principal
from sandboxd.store import Store

ACME = Principal(ids.new_id(ids.TENANT), ids.new_id(ids.KEY), admin=False)
GLOBEX = Principal(ids.new_id(ids.TENANT), ids.new_id(ids.KEY), admin=False)
ADMIN = Principal(ids.new_id(ids.TENANT), ids.new_id(ids.KEY), admin=True)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sandboxd.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store(db_path) as opened:
        yield opened


@pytest.fixture
def audit(store: Store) -> AuditLog:
    return AuditLog(store)


def _fill(audit: AuditLog, count: int) -> None:
    for n in range(count):
        principal = ACME if n % 2 else GLOBEX
        audit.record(principal, "sandbox.exec", sandbox_id=f"sbx_{n}", args={"n": n})


def _raw(db_path: Path, sql: str, *params: object) -> None:
    raw = sqlite3.connect(db_path)
    try:
        with raw:
            raw.execute(sql, params)
    finally:
        raw.close()


# -- recording -------------------------------------------------------------------------


def test_records_carry_who_what_and_link_to_the_previous(audit: AuditLog) -> None:
    first = audit.record(ACME, "sandbox.create", sandbox_id="sbx_1", args={"image": "x"})
    second = audit.record(
        None, "sandbox.reconcile", tenant_id=ACME.tenant_id, result="error", error="gone"
    )
    assert (first.seq, first.tenant_id, first.key_id) == (1, ACME.tenant_id, ACME.key_id)
    assert first.prev_hash == GENESIS_HASH
    assert first.args == {"image": "x"}
    assert second.seq == 2
    assert second.prev_hash == first.hash
    assert (second.key_id, second.tenant_id, second.error) == (None, ACME.tenant_id, "gone")
    assert audit.head == (2, second.hash)


def test_chain_continues_across_reopen(db_path: Path) -> None:
    with Store(db_path) as store:
        _fill(AuditLog(store), 3)
    with Store(db_path) as store:
        audit = AuditLog(store)
        assert audit.record(ADMIN, "key.create").seq == 4
        assert audit.verify().ok


def test_two_writers_on_one_database_keep_one_chain(db_path: Path) -> None:
    with Store(db_path) as one, Store(db_path) as two:
        log_one, log_two = AuditLog(one), AuditLog(two)
        for _ in range(5):
            log_one.record(ACME, "a")
            log_two.record(GLOBEX, "b")
        assert [r.seq for r in one.iter_audit()] == list(range(1, 11))
        report = log_one.verify()
        assert report.ok, report
        assert report.checked == 10


def test_recording_writes_ok_or_error_with_what_the_block_learned(
    audit: AuditLog, store: Store
) -> None:
    with audit.recording(ACME, "sandbox.create", args={"image": "x"}) as pending:
        pending.sandbox_id = "sbx_new"
    with pytest.raises(NotFound):
        with audit.recording(ACME, "sandbox.delete", sandbox_id="sbx_gone"):
            raise NotFound("sandbox sbx_gone does not exist")
    created, failed = store.query_audit()
    assert (created.sandbox_id, created.result, created.error) == ("sbx_new", "ok", None)
    assert (failed.result, failed.error) == ("error", "not_found: sandbox sbx_gone does not exist")


async def test_recording_notes_cancellation(audit: AuditLog, store: Store) -> None:
    async def slow() -> None:
        with audit.recording(ACME, "sandbox.exec"):
            await asyncio.sleep(3600)

    task = asyncio.create_task(slow())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.last_audit().error == "cancelled"


# -- verification ------------------------------------------------------------------------


def test_intact_chain_verifies(audit: AuditLog) -> None:
    assert audit.verify().ok
    _fill(audit, 20)
    report = audit.verify()
    assert report.ok, report
    assert (report.checked, report.first_bad_seq, report.problem) == (20, None, None)


def test_edited_record_is_found_by_seq(audit: AuditLog, db_path: Path) -> None:
    _fill(audit, 10)
    _raw(db_path, "UPDATE audit SET args = ? WHERE seq = 6", json.dumps({"n": 999}))
    report = audit.verify()
    assert not report.ok
    assert report.first_bad_seq == 6
    assert report.checked == 5
    assert "record 6 was changed" in report.problem


def test_edited_and_rehashed_record_breaks_the_next_link(
    audit: AuditLog, db_path: Path, store: Store
) -> None:
    _fill(audit, 10)
    victim = next(r for r in store.iter_audit() if r.seq == 4)
    forged = dataclasses.replace(victim, result="error")
    forged_hash = record_hash(**{
        f.name: getattr(forged, f.name) for f in dataclasses.fields(forged) if f.name != "hash"
    })
    _raw(db_path, "UPDATE audit SET result = 'error', hash = ? WHERE seq = 4", forged_hash)
    report = audit.verify()
    assert not report.ok
    assert report.first_bad_seq == 4
    assert "between seq 4 and seq 5" in report.problem


def test_deleted_middle_record_is_found(audit: AuditLog, db_path: Path) -> None:
    _fill(audit, 10)
    _raw(db_path, "DELETE FROM audit WHERE seq = 5")
    report = audit.verify()
    assert not report.ok
    assert report.first_bad_seq == 5
    assert "between seq 4 and seq 6" in report.problem


def test_deleted_first_record_is_found(audit: AuditLog, db_path: Path) -> None:
    _fill(audit, 3)
    _raw(db_path, "DELETE FROM audit WHERE seq = 1")
    report = audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 1)


def test_cut_tail_is_found_against_the_anchor_and_stays_visible(db_path: Path) -> None:
    with Store(db_path) as store:
        _fill(AuditLog(store), 10)
    _raw(db_path, "DELETE FROM audit WHERE seq > 7")
    with Store(db_path) as store:
        audit = AuditLog(store)
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 8)
        assert "records 8 to 10 are missing" in report.problem
        # New records follow the vanished ones, so the gap cannot be papered over.
        assert audit.record(ADMIN, "after").seq == 11
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 8)
        assert "between seq 7 and seq 11" in report.problem


def test_lost_anchor_is_reported(audit: AuditLog, db_path: Path) -> None:
    _fill(audit, 2)
    _raw(db_path, "DELETE FROM meta WHERE key = 'audit_head'")
    report = audit.verify()
    assert not report.ok
    assert "anchor" in report.problem


# -- queries -------------------------------------------------------------------------------


def test_tenants_see_only_their_own_records(audit: AuditLog) -> None:
    _fill(audit, 10)
    audit.record(None, "daemon.start")
    assert {r.tenant_id for r in audit.query(ACME)} == {ACME.tenant_id}
    assert len(audit.query(ACME)) == 5
    assert len(audit.query(ACME, tenant_id=ACME.tenant_id)) == 5
    assert [r.sandbox_id for r in audit.query(GLOBEX, sandbox_id="sbx_1")] == []
    with pytest.raises(Forbidden):
        audit.query(ACME, tenant_id=GLOBEX.tenant_id)
    assert len(audit.query(ADMIN)) == 11
    assert len(audit.query(ADMIN, tenant_id=GLOBEX.tenant_id)) == 5


def test_query_filters_and_pages(audit: AuditLog) -> None:
    _fill(audit, 10)
    page = audit.query(ADMIN, limit=4)
    assert [r.seq for r in page] == [1, 2, 3, 4]
    assert [r.seq for r in audit.query(ADMIN, limit=4, after_seq=page[-1].seq)] == [5, 6, 7, 8]
    assert [r.seq for r in audit.query(ADMIN, action="sandbox.exec", sandbox_id="sbx_3")] == [4]
    middle = audit.query(ADMIN)[4].ts
    assert all(r.ts >= middle for r in audit.query(ADMIN, since=middle))
    assert all(r.ts < middle for r in audit.query(ADMIN, until=middle))
    for bad in (0, 1001, -1):
        with pytest.raises(InvalidRequest):
            audit.query(ADMIN, limit=bad)


# -- summaries -------------------------------------------------------------------------------


def test_summarize_drops_secrets_and_contents() -> None:
    given = {
        "image": "py",
        "secret": "s1", "password": "p", "api_key": "k", "apiKey": "k", "APIKey": "k",
        "token": "t", "value": "v", "content": "c", "data": b"d", "stdin": "i",
        "Authorization": "Bearer x", "fileContents": "c",
        "key_id": "key_abc", "secret_names": ["openai"], "content_length": 5, "metadata": "m",
        "headers": {"Authorization": "Bearer y", "Accept": "json"},
    }
    summary = summarize_args(given)
    assert summary == {
        "image": "py",
        "key_id": "key_abc",
        "secret_names": ["openai"],
        "content_length": 5,
        "metadata": "m",
        "headers": {"Accept": "json"},
    }


def test_summarize_keeps_only_env_names() -> None:
    summary = summarize_args({"env": {"OPENAI_TOKEN": "sk-123", "DEBUG": "1"}})
    assert summary == {"env": ["DEBUG", "OPENAI_TOKEN"]}
    assert "sk-123" not in json.dumps(summary)


def test_summarize_cuts_long_values() -> None:
    summary = summarize_args({"cmd": "x" * 5000, "argv": list(range(100)), "blob": bytearray(10)})
    assert summary["cmd"].startswith("x" * 200)
    assert len(summary["cmd"]) < 250
    assert "4800 more chars" in summary["cmd"]
    assert summary["argv"][:20] == list(range(20))
    assert summary["argv"][20] == "... (80 more items)"
    assert summary["blob"] == "<10 bytes>"


def test_summarize_makes_anything_json_without_repr_leaks() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "Opaque(password=hunter2)"

    @dataclasses.dataclass
    class Spec:
        memory: int
        token: str

    summary = summarize_args({
        "obj": Opaque(), "spec": Spec(1, "t0k"), "path": Path("/workspace/a"), "tags": {"b", "a"},
        "ratio": float("nan"), 7: "int key", "deep": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}},
    })
    text = json.dumps(summary, allow_nan=False)
    assert "hunter2" not in text and "t0k" not in text
    assert summary["obj"] == "<Opaque>"
    assert summary["spec"] == {"memory": 1}
    assert summary["path"] == "/workspace/a"
    assert summary["tags"] == ["a", "b"]
    assert summary["7"] == "int key"
    assert "nested too deep" in text


def test_record_summarizes_and_the_secret_never_reaches_the_file(
    audit: AuditLog, db_path: Path
) -> None:
    audit.record(ACME, "secret.put", args={"name": "openai", "value": "sk-live-SENSITIVE"})
    assert audit.query(ACME)[0].args == {"name": "openai"}
    for path in db_path.parent.iterdir():
        assert b"sk-live-SENSITIVE" not in path.read_bytes()


# -- speed -------------------------------------------------------------------------------------


def test_record_speed(audit: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
    args = {
        "cmd": ["python", "-c", "print(1)"], "cwd": "/workspace", "timeout": 30, "env": {"A": "1"}
    }
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        audit.record(ACME, "sandbox.exec", sandbox_id="sbx_speed", args=args)
    per_call = (time.perf_counter() - start) / rounds
    start = time.perf_counter()
    report = audit.verify()
    verify_per_record = (time.perf_counter() - start) / rounds
    assert report.ok
    with capsys.disabled():
        print(
            f"\n[audit] record: {per_call * 1e6:.0f} us/call; "
            f"verify: {verify_per_record * 1e6:.1f} us/record ({rounds} records)"
        )


def test_text_utf8_cannot_carry_is_recorded_anyway(audit: AuditLog, store: Store) -> None:
    # json.loads('"\\ud800"') yields a lone surrogate; SQLite and the hash need valid UTF-8.
    lone = json.loads('"a\\ud800b"')
    audit.record(ACME, "file.write", sandbox_id=lone, args={"path": lone, lone: 1}, error=lone)
    record = store.last_audit()
    assert record.args == {"path": "a?b", "a?b": 1}
    assert (record.sandbox_id, record.error) == ("a?b", "a?b")
    assert audit.verify().ok
