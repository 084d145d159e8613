"""SecretService: write-only values, sealed at rest, checked like the proxy checks them, audited without them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxd.egress.keys import SecretBox, ensure_key_file
from sandboxd.errors import InvalidRequest, NotFound
from sandboxd.models import PutSecret
from sandboxd.service.audit import AuditLog
from sandboxd.service.secrets import SecretService
from sandboxd.service.tenants import Principal
from sandboxd.store import Store, Tenant

ALICE = Principal(tenant_id="tnt_aaaaaaaaaaaaaaaaaaaa", key_id="key_aaaaaaaaaaaaaaaaaaaa", admin=False)
BOB = Principal(tenant_id="tnt_bbbbbbbbbbbbbbbbbbbb", key_id="key_bbbbbbbbbbbbbbbbbbbb", admin=False)
VALUE = "ghp_the-real-value-0123456789"


class FakeController:
    """The parts of EgressController the service uses: the box, and a count of state rewrites."""

    def __init__(self, box: SecretBox) -> None:
        self.box = box
        self.refreshes = 0

    def refresh(self) -> None:
        self.refreshes += 1


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[SecretService, Store, FakeController]]:
    with Store(tmp_path / "db.sqlite") as store:
        for principal in (ALICE, BOB):
            store.insert_tenant(Tenant(principal.tenant_id, principal.tenant_id, 0.0))
        controller = FakeController(SecretBox(ensure_key_file(tmp_path / "secrets.key")))
        yield SecretService(store, controller, AuditLog(store)), store, controller  # type: ignore[arg-type]


def put(**fields: object) -> PutSecret:
    return PutSecret.model_validate({"value": VALUE, "hosts": ["api.github.com"], **fields})


def test_stored_sealed_and_listed_without_the_value(parts, tmp_path: Path) -> None:
    service, store, controller = parts
    record, created = service.put(ALICE, "GITHUB_TOKEN", put(inject={"type": "header", "header": "Authorization",
                                                                     "template": "Bearer {value}"}))
    assert created and controller.refreshes == 1
    assert VALUE.encode() not in record.sealed and VALUE not in repr(record)
    assert controller.box.open(ALICE.tenant_id, "GITHUB_TOKEN", store.get_secret(ALICE.tenant_id, "GITHUB_TOKEN").sealed) == VALUE
    assert [s.name for s in service.list(ALICE)] == ["GITHUB_TOKEN"] and service.list(BOB) == []
    store.close()
    assert VALUE.encode() not in (tmp_path / "db.sqlite").read_bytes()


def test_replacing_keeps_the_creation_time(parts) -> None:
    service, _, _ = parts
    first, _ = service.put(ALICE, "TOKEN", put())
    second, created = service.put(ALICE, "TOKEN", put(hosts=["*.example.com"]))
    assert not created and second.created_at == first.created_at and second.hosts == ["*.example.com"]


def test_the_audit_names_the_secret_never_its_value(parts) -> None:
    service, store, _ = parts
    service.put(ALICE, "TOKEN", put())
    service.delete(ALICE, "TOKEN")
    records = list(store.iter_audit())
    assert [r.action for r in records] == ["secret.put", "secret.delete"]
    assert records[0].args["name"] == "TOKEN" and records[0].args["hosts"] == ["api.github.com"]
    assert VALUE not in json.dumps([r.args for r in records])


@pytest.mark.parametrize(
    ("name", "fields", "message"),
    [
        ("TOKEN", {"value": "short"}, "at least 6"),
        ("TOKEN", {"value": "line\nbreak-value"}, "CR, LF or NUL"),
        ("TOKEN", {"hosts": ["*"]}, "may not contain '*'"),
        ("TOKEN", {"inject": {"type": "header", "template": "{value}"}}, "inject.header"),
        ("TOKEN", {"inject": {"type": "header", "header": "X", "template": "no placeholder"}}, "{value}"),
        ("TOKEN", {"inject": {"type": "query"}}, "inject.param"),
        ("HTTPS_PROXY", {}, "set by sandboxd"),
        ("9LIVES", {}, "not a valid secret name"),
    ],
)
def test_what_the_proxy_would_refuse_is_refused_here(parts, name: str, fields: dict, message: str) -> None:
    service, store, controller = parts
    with pytest.raises(InvalidRequest, match=message) as caught:
        service.put(ALICE, name, put(**fields))
    assert VALUE not in caught.value.message
    assert store.list_secrets() == [] and controller.refreshes == 0


def test_delete_is_per_tenant(parts) -> None:
    service, _, _ = parts
    service.put(ALICE, "TOKEN", put())
    with pytest.raises(NotFound):
        service.delete(BOB, "TOKEN")
    with pytest.raises(NotFound):
        service.get(BOB, "TOKEN")
    service.delete(ALICE, "TOKEN")
    with pytest.raises(NotFound):
        service.delete(ALICE, "TOKEN")
