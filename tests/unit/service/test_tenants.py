import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxd import ids
from sandboxd.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthenticated,
)
from sandboxd.service.audit import AuditLog
from sandboxd.service.tenants import Principal, TenantService, format_api_key, parse_api_key
from sandboxd.store import Store

CHOSEN_KEY = "a-long-operator-chosen-key-0123456789"


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


@pytest.fixture
def tenants(store: Store, audit: AuditLog) -> TenantService:
    return TenantService(store, audit)


@pytest.fixture
def admin_key(tenants: TenantService) -> str:
    key = tenants.bootstrap(None)
    assert key is not None
    return key


@pytest.fixture
def admin(tenants: TenantService, admin_key: str) -> Principal:
    return tenants.authenticate(f"Bearer {admin_key}")


# -- key format ----------------------------------------------------------------------------


def test_key_format_round_trips() -> None:
    key_id = ids.new_id(ids.KEY)
    plaintext = format_api_key(key_id, "s" * 43)
    assert plaintext == f"sbd_{key_id[4:]}_{'s' * 43}"
    assert parse_api_key(plaintext) == (key_id, "s" * 43)


def test_secret_may_contain_underscores_and_dashes() -> None:
    key_id = ids.new_id(ids.KEY)
    secret = "_-" * 21 + "x"
    assert parse_api_key(format_api_key(key_id, secret)) == (key_id, secret)


def test_chosen_keys_get_a_stable_derived_id() -> None:
    first = parse_api_key(CHOSEN_KEY)
    assert first is not None
    assert ids.is_id(ids.KEY, first[0])
    assert first == parse_api_key(CHOSEN_KEY)
    assert first[1] == CHOSEN_KEY


@pytest.mark.parametrize(
    "bad",
    ["short", "x" * 31, "has a space in it but is long enough", "sbd_" + "a" * 40, "é" * 40],
)
def test_malformed_keys_do_not_parse(bad: str) -> None:
    assert parse_api_key(bad) is None


# -- bootstrap ---------------------------------------------------------------------------------


def test_first_start_creates_default_tenant_and_admin_key(
    tenants: TenantService, store: Store, audit: AuditLog
) -> None:
    key = tenants.bootstrap(None)
    assert key is not None and key.startswith("sbd_")
    (tenant,) = store.list_tenants()
    assert tenant.name == "default"
    principal = tenants.authenticate(f"Bearer {key}")
    assert principal.admin and principal.tenant_id == tenant.id
    assert [r.action for r in store.iter_audit()] == ["tenant.create", "key.create"]
    assert audit.verify().ok


def test_later_starts_print_nothing(db_path: Path, admin_key: str) -> None:
    with Store(db_path) as store:
        again = TenantService(store, AuditLog(store))
        assert again.bootstrap(None) is None
        assert again.authenticate(f"Bearer {admin_key}").admin
        assert len(store.list_keys()) == 1


def test_first_start_with_configured_key(tenants: TenantService, store: Store) -> None:
    assert tenants.bootstrap(CHOSEN_KEY) is None
    assert tenants.authenticate(f"Bearer {CHOSEN_KEY}").admin
    (key,) = store.list_keys()
    assert key.name == "SANDBOXD_API_KEY"
    assert tenants.bootstrap(CHOSEN_KEY) is None, "a known key is not registered twice"
    assert len(store.list_keys()) == 1


def test_configured_key_on_a_later_start_is_added(
    tenants: TenantService, admin_key: str, store: Store
) -> None:
    assert tenants.bootstrap(CHOSEN_KEY) is None
    assert tenants.authenticate(f"Bearer {CHOSEN_KEY}").admin
    assert tenants.authenticate(f"Bearer {admin_key}").admin
    assert len(store.list_tenants()) == 1


def test_malformed_configured_key_is_refused_with_the_format(
    tenants: TenantService, store: Store
) -> None:
    with pytest.raises(InvalidRequest, match="32 to 256 printable"):
        tenants.bootstrap("too-short")
    assert store.list_tenants() == []


def test_configured_key_with_a_known_id_but_other_secret_is_refused(
    tenants: TenantService, admin_key: str
) -> None:
    key_id, _ = parse_api_key(admin_key)
    with pytest.raises(InvalidRequest, match=key_id):
        tenants.bootstrap(format_api_key(key_id, "Z" * 43))


# -- authenticate -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        ("Basic dXNlcjpwdw==", "Bearer"),
        ("Bearer", "Bearer"),
        ("Bearer ", "Bearer"),
        ("Bearer nope", "malformed API key"),
        ("Bearer sbd_short_key", "malformed API key"),
    ],
)
def test_authenticate_says_what_is_wrong(
    tenants: TenantService, admin_key: str, header: str | None, says: str
) -> None:
    with pytest.raises(Unauthenticated, match=says):
        tenants.authenticate(header)


def test_unknown_and_wrong_secret_look_the_same(tenants: TenantService, admin_key: str) -> None:
    key_id, secret = parse_api_key(admin_key)
    wrong_secret = format_api_key(key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    unknown = format_api_key(ids.new_id(ids.KEY), secret)
    messages = set()
    for bad in (wrong_secret, unknown, CHOSEN_KEY):
        with pytest.raises(Unauthenticated) as caught:
            tenants.authenticate(f"Bearer {bad}")
        messages.add(caught.value.message)
    assert messages == {"invalid API key: it is unknown or has been revoked"}
    # The good key still works after the cache saw a wrong secret for its id.
    assert tenants.authenticate(f"bearer  {admin_key} ").admin


def test_revoked_key_stops_working_at_once(tenants: TenantService, admin: Principal) -> None:
    tenant = tenants.create_tenant(admin, "acme")
    key, plaintext = tenants.create_key(admin, tenant.id, "ci")
    assert tenants.authenticate(f"Bearer {plaintext}") == Principal(tenant.id, key.id, False)
    revoked = tenants.revoke_key(admin, key.id)
    assert revoked.revoked_at is not None
    with pytest.raises(Unauthenticated, match="unknown or has been revoked"):
        tenants.authenticate(f"Bearer {plaintext}")


def test_revoked_key_fails_for_a_fresh_service_too(
    db_path: Path, tenants: TenantService, admin: Principal
) -> None:
    tenant = tenants.create_tenant(admin, "acme")
    key, plaintext = tenants.create_key(admin, tenant.id, "ci")
    tenants.revoke_key(admin, key.id)
    with Store(db_path) as store:
        fresh = TenantService(store, AuditLog(store))
        with pytest.raises(Unauthenticated):
            fresh.authenticate(f"Bearer {plaintext}")


def test_keys_are_stored_hashed(
    db_path: Path, tenants: TenantService, admin_key: str, admin: Principal
) -> None:
    tenant = tenants.create_tenant(admin, "acme")
    _, plaintext = tenants.create_key(admin, tenant.id, "ci")
    for secret in (parse_api_key(admin_key)[1], parse_api_key(plaintext)[1]):
        for path in db_path.parent.iterdir():
            assert secret.encode() not in path.read_bytes(), path.name


# -- tenants and keys --------------------------------------------------------------------------


def test_only_admins_manage_tenants_and_keys(
    tenants: TenantService, admin: Principal, store: Store
) -> None:
    tenant = tenants.create_tenant(admin, "acme")
    key, plaintext = tenants.create_key(admin, tenant.id, "ci")
    user = tenants.authenticate(f"Bearer {plaintext}")
    with pytest.raises(Forbidden):
        tenants.create_tenant(user, "mine")
    with pytest.raises(Forbidden):
        tenants.create_key(user, tenant.id, "more")
    with pytest.raises(Forbidden):
        tenants.revoke_key(user, key.id)
    denied = store.query_audit(tenant_id=tenant.id, action="tenant.create")
    assert [(r.result, r.key_id, r.args) for r in denied] == [
        ("error", key.id, {"name": "mine"})
    ], "refused attempts are audited too"


def test_tenant_names(tenants: TenantService, admin: Principal) -> None:
    assert tenants.create_tenant(admin, "a").name == "a"
    assert tenants.create_tenant(admin, "team-7_x").name == "team-7_x"
    assert tenants.create_tenant(admin, "z" * 64).name == "z" * 64
    for bad in ("", "-lead", "Upper", "has space", "z" * 65, "dot.ted"):
        with pytest.raises(InvalidRequest, match="tenant name"):
            tenants.create_tenant(admin, bad)
    with pytest.raises(AlreadyExists):
        tenants.create_tenant(admin, "a")


def test_create_key_for_unknown_tenant(tenants: TenantService, admin: Principal) -> None:
    with pytest.raises(NotFound):
        tenants.create_key(admin, ids.new_id(ids.TENANT), "x")
    with pytest.raises(InvalidRequest):
        tenants.create_key(admin, "acme", "x")
    with pytest.raises(InvalidRequest, match="key name"):
        tenants.create_key(admin, admin.tenant_id, "")


def test_listing_is_isolated(tenants: TenantService, admin: Principal) -> None:
    acme = tenants.create_tenant(admin, "acme")
    globex = tenants.create_tenant(admin, "globex")
    acme_key, acme_plain = tenants.create_key(admin, acme.id, "ci")
    globex_key, _ = tenants.create_key(admin, globex.id, "ci")
    user = tenants.authenticate(f"Bearer {acme_plain}")

    assert tenants.list_tenants(user) == [acme]
    assert {t.name for t in tenants.list_tenants(admin)} == {"default", "acme", "globex"}
    assert [k.id for k in tenants.list_keys(user)] == [acme_key.id]
    assert [k.id for k in tenants.list_keys(user, acme.id)] == [acme_key.id]
    with pytest.raises(NotFound):
        tenants.list_keys(user, globex.id)
    assert [k.id for k in tenants.list_keys(admin, globex.id)] == [globex_key.id]
    assert len(tenants.list_keys(admin)) == 3


def test_revoke(tenants: TenantService, admin: Principal, store: Store) -> None:
    with pytest.raises(NotFound):
        tenants.revoke_key(admin, ids.new_id(ids.KEY))
    with pytest.raises(InvalidRequest):
        tenants.revoke_key(admin, "not-an-id")
    with pytest.raises(Conflict, match="last admin key"):
        tenants.revoke_key(admin, admin.key_id)
    second, _ = tenants.create_key(admin, admin.tenant_id, "second admin", admin=True)
    first_revocation = tenants.revoke_key(admin, second.id)
    again = tenants.revoke_key(admin, second.id)
    assert again.revoked_at == first_revocation.revoked_at
    actions = [(r.action, r.result) for r in store.iter_audit()][-3:]
    assert actions == [("key.create", "ok"), ("key.revoke", "ok"), ("key.revoke", "ok")]


def test_audit_records_of_tenant_changes_hold_no_secrets(
    tenants: TenantService, admin: Principal, store: Store
) -> None:
    tenant = tenants.create_tenant(admin, "acme")
    key, plaintext = tenants.create_key(admin, tenant.id, "ci")
    record = store.last_audit()
    assert record.action == "key.create"
    assert record.args == {"tenant_id": tenant.id, "name": "ci", "admin": False, "key_id": key.id}
    assert parse_api_key(plaintext)[1] not in repr(list(store.iter_audit()))


# -- speed ------------------------------------------------------------------------------------


def test_authenticate_speed(
    tenants: TenantService, admin_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    header = f"Bearer {admin_key}"
    tenants.authenticate(header)
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        tenants.authenticate(header)
    per_call = (time.perf_counter() - start) / rounds
    bad = "Bearer " + format_api_key(ids.new_id(ids.KEY), "x" * 43)
    start = time.perf_counter()
    for _ in range(2000):
        with pytest.raises(Unauthenticated):
            tenants.authenticate(bad)
    per_miss = (time.perf_counter() - start) / 2000
    with capsys.disabled():
        print(
            f"\n[tenants] authenticate: {per_call * 1e6:.1f} us/call cached; "
            f"{per_miss * 1e6:.1f} us/call unknown key"
        )
