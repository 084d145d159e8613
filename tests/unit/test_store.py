import dataclasses
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxd import ids
from sandboxd.errors import AlreadyExists, Conflict, NotFound, SandboxdError
from sandboxd.store import ApiKey, AuditRecord, SandboxRecord, Store, Tenant


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sandboxd.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store(db_path) as opened:
        yield opened


@pytest.fixture
def tenant(store: Store) -> Tenant:
    return _tenant(store, "acme")


def _tenant(store: Store, name: str) -> Tenant:
    tenant = Tenant(ids.new_id(ids.TENANT), name, time.time())
    store.insert_tenant(tenant)
    return tenant


def _sandbox(
    tenant: Tenant, *, state: str = "running", labels: dict[str, str] | None = None
) -> SandboxRecord:
    now = time.time()
    return SandboxRecord(
        id=ids.new_id(ids.SANDBOX),
        tenant_id=tenant.id,
        state=state,
        image="sandboxd/sandbox:latest",
        spec={"memory": 512 * 2**20, "env": {"A": "1"}, "cmd": ["bash"]},
        labels=labels or {},
        container_id=None,
        created_at=now,
        updated_at=now,
    )


def _audit_row(seq: int, prev_hash: str, digest: str) -> AuditRecord:
    return AuditRecord(
        seq, time.time(), None, None, None, "test", {}, "ok", None, prev_hash, digest
    )


# -- opening and migrations ------------------------------------------------------


def test_open_creates_file_private_and_in_wal_mode(store: Store, db_path: Path) -> None:
    assert db_path.exists()
    assert db_path.stat().st_mode & 0o777 == 0o600
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_reopening_keeps_data_and_does_not_migrate_again(db_path: Path) -> None:
    with Store(db_path) as first:
        version = first.schema_version
        tenant = _tenant(first, "acme")
        first.set_meta("instance", "abc")
    assert version >= 1
    with Store(db_path) as second:
        assert second.schema_version == version
        assert second.get_tenant(tenant.id) == tenant
        assert second.get_meta("instance") == "abc"


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA user_version = 999")
    raw.close()
    with pytest.raises(SandboxdError, match="newer"):
        Store(db_path)


def test_memory_database_works() -> None:
    with Store(":memory:") as store:
        tenant = _tenant(store, "acme")
        assert store.list_tenants() == [tenant]


# -- tenants and keys --------------------------------------------------------------


def test_tenants_round_trip_and_names_are_unique(store: Store, tenant: Tenant) -> None:
    assert store.get_tenant(tenant.id) == tenant
    assert store.get_tenant_by_name("acme") == tenant
    assert store.get_tenant("tnt_" + "a" * 20) is None
    other = _tenant(store, "globex")
    assert store.list_tenants() == [tenant, other]
    with pytest.raises(AlreadyExists):
        _tenant(store, "acme")


def test_keys_insert_list_and_revoke(store: Store, tenant: Tenant) -> None:
    other = _tenant(store, "globex")
    key = ApiKey(ids.new_id(ids.KEY), tenant.id, "ci", "h" * 64, False, time.time(), None)
    admin = ApiKey(ids.new_id(ids.KEY), other.id, "root", "g" * 64, True, time.time(), None)
    store.insert_key(key)
    store.insert_key(admin)
    assert store.get_key(key.id) == key
    assert store.get_key(admin.id).admin is True
    assert store.list_keys(tenant.id) == [key]
    assert store.list_keys() == [key, admin]

    assert store.revoke_key(key.id, 123.0) is True
    assert store.get_key(key.id).revoked_at == 123.0
    assert store.revoke_key(key.id, 456.0) is False, "revoking twice changes nothing"
    assert store.get_key(key.id).revoked_at == 123.0
    assert store.revoke_key("key_" + "b" * 20, 1.0) is False


def test_key_for_unknown_tenant_is_not_found(store: Store) -> None:
    key = ApiKey(ids.new_id(ids.KEY), "tnt_" + "c" * 20, "x", "h" * 64, False, time.time(), None)
    with pytest.raises(NotFound, match="tenant"):
        store.insert_key(key)


# -- sandboxes -----------------------------------------------------------------------


def test_sandbox_crud(store: Store, tenant: Tenant) -> None:
    record = _sandbox(tenant, state="creating", labels={"team": "ml"})
    store.insert_sandbox(record)
    assert store.get_sandbox(record.id) == record

    updated = store.update_sandbox(record.id, state="running", container_id="c0ffee", spec={"x": 1})
    assert updated.state == "running"
    assert updated.container_id == "c0ffee"
    assert updated.spec == {"x": 1}
    assert updated.labels == {"team": "ml"}
    assert updated.updated_at >= record.updated_at
    assert updated.created_at == record.created_at
    assert store.get_sandbox(record.id) == updated

    failed = store.update_sandbox(record.id, state="failed", error="container vanished")
    assert failed.error == "container vanished"

    assert store.delete_sandbox(record.id) is True
    assert store.get_sandbox(record.id) is None
    assert store.delete_sandbox(record.id) is False


def test_update_of_missing_sandbox_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.update_sandbox("sbx_" + "a" * 20, state="running")


def test_update_refuses_unknown_columns_and_states(store: Store, tenant: Tenant) -> None:
    record = _sandbox(tenant)
    store.insert_sandbox(record)
    with pytest.raises(TypeError):
        store.update_sandbox(record.id, tenant_id="tnt_" + "z" * 20)
    with pytest.raises(ValueError):
        store.update_sandbox(record.id, state="exploded")
    assert store.get_sandbox(record.id) == record


def test_duplicate_sandbox_and_unknown_tenant(store: Store, tenant: Tenant) -> None:
    record = _sandbox(tenant)
    store.insert_sandbox(record)
    with pytest.raises(AlreadyExists):
        store.insert_sandbox(record)
    stranger = Tenant("tnt_" + "d" * 20, "ghost", 0.0)
    with pytest.raises(NotFound):
        store.insert_sandbox(_sandbox(stranger))


def test_list_sandboxes_filters(store: Store, tenant: Tenant) -> None:
    other = _tenant(store, "globex")
    a = _sandbox(tenant, labels={"team": "ml", "env": "dev"})
    b = _sandbox(tenant, state="paused", labels={"team": "ml", "env": "prod"})
    c = _sandbox(tenant, labels={"odd key \"with\" quotes.$[0]": "v"})
    d = _sandbox(other, labels={"team": "ml"})
    for record in (a, b, c, d):
        store.insert_sandbox(record)

    assert [s.id for s in store.list_sandboxes()] == [a.id, b.id, c.id, d.id]
    assert [s.id for s in store.list_sandboxes(tenant_id=tenant.id)] == [a.id, b.id, c.id]
    assert [s.id for s in store.list_sandboxes(state="paused")] == [b.id]
    assert [s.id for s in store.list_sandboxes(tenant.id, labels={"team": "ml"})] == [a.id, b.id]
    assert [s.id for s in store.list_sandboxes(labels={"team": "ml", "env": "prod"})] == [b.id]
    assert store.list_sandboxes(labels={"team": "ml", "env": "test"}) == []
    odd = {"odd key \"with\" quotes.$[0]": "v"}
    assert [s.id for s in store.list_sandboxes(labels=odd)] == [c.id]
    assert store.list_sandboxes(tenant.id, state="running", labels={"env": "prod"}) == []


# -- audit rows and meta ---------------------------------------------------------------


def test_audit_rows_append_in_chain_order(store: Store) -> None:
    assert store.last_audit() is None
    assert store.audit_tip() is None
    first = _audit_row(1, "0" * 64, "a" * 64)
    store.append_audit(first)
    second = _audit_row(2, "a" * 64, "b" * 64)
    store.append_audit(second)
    assert store.last_audit() == second
    assert store.audit_head() == (2, "b" * 64)
    assert list(store.iter_audit()) == [first, second]


def test_audit_append_that_does_not_follow_the_head_conflicts(store: Store) -> None:
    store.append_audit(_audit_row(1, "0" * 64, "a" * 64))
    with pytest.raises(Conflict):
        store.append_audit(_audit_row(3, "a" * 64, "c" * 64))
    with pytest.raises(Conflict):
        store.append_audit(_audit_row(2, "f" * 64, "c" * 64))
    assert [r.seq for r in store.iter_audit()] == [1]


def test_query_audit_filters_and_pages(store: Store) -> None:
    prev = "0" * 64
    for seq in range(1, 11):
        digest = f"{seq:064d}"
        row = AuditRecord(
            seq, float(seq), "t1" if seq % 2 else "t2", "k", "sbx" if seq > 5 else None,
            "exec" if seq % 3 == 0 else "create", {"n": seq}, "ok", None, prev, digest,
        )
        store.append_audit(row)
        prev = digest
    assert [r.seq for r in store.query_audit(tenant_id="t1")] == [1, 3, 5, 7, 9]
    assert [r.seq for r in store.query_audit(sandbox_id="sbx", action="exec")] == [6, 9]
    assert [r.seq for r in store.query_audit(since=3.0, until=6.0)] == [3, 4, 5]
    assert [r.seq for r in store.query_audit(limit=3)] == [1, 2, 3]
    assert [r.seq for r in store.query_audit(limit=3, after_seq=3)] == [4, 5, 6]
    assert store.query_audit(after_seq=10) == []
    assert store.query_audit(tenant_id="t2", limit=1)[0].args == {"n": 2}


def test_iter_audit_reads_past_one_batch(store: Store) -> None:
    prev = "0" * 64
    for seq in range(1, 2503):
        digest = f"{seq:064x}"
        store.append_audit(_audit_row(seq, prev, digest))
        prev = digest
    assert [r.seq for r in store.iter_audit()] == list(range(1, 2503))


def test_meta(store: Store) -> None:
    assert store.get_meta("instance_id") is None
    store.set_meta("instance_id", "one")
    store.set_meta("instance_id", "two")
    assert store.get_meta("instance_id") == "two"


def test_concurrent_writers_from_threads(store: Store, tenant: Tenant) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                record = _sandbox(tenant)
                store.insert_sandbox(record)
                store.update_sandbox(record.id, state="stopped")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.list_sandboxes(state="stopped")) == 400


def test_any_text_in_spec_and_labels_round_trips(store: Store, tenant: Tenant) -> None:
    lone = "a\ud800b"
    record = _sandbox(tenant, labels={"name": "café", "odd": lone})
    record = dataclasses.replace(record, spec={"cmd": lone})
    store.insert_sandbox(record)
    assert store.get_sandbox(record.id) == record
    assert [s.id for s in store.list_sandboxes(labels={"name": "café"})] == [record.id]
