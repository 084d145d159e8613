"""Building and publishing the proxy's state from the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from egress_proxy.state import read_state_file
from sandboxd.egress.keys import SecretBox, ensure_key_file
from sandboxd.egress.state import StatePublisher, build_document
from sandboxd.store import SandboxEgress, SecretRecord, Store, Tenant

TENANT = "tnt_aaaaaaaaaaaaaaaaaaaa"


def row(sandbox_id: str, ip: str | None, *, policy: list | None = None, at: float = 1.0) -> SandboxEgress:
    return SandboxEgress(sandbox_id, TENANT, policy, ip, at if ip else None, at)


def secret(name: str, hosts: list[str] | None = None) -> SecretRecord:
    return SecretRecord(TENANT, name, b"sealed", hosts or ["api.example.com"], None, False, False, 1.0, 1.0)


def reveal(record: SecretRecord) -> str:
    return f"value-of-{record.name}"


def test_only_sandboxes_with_an_address_appear_with_their_own_or_the_tenant_rules() -> None:
    own = [{"action": "allow", "host": "pypi.org"}]
    tenant = [{"action": "allow", "host": "*.example.com"}]
    document, problems = build_document(
        [row("sbx_a", "10.0.0.2", policy=own), row("sbx_b", "10.0.0.3"), row("sbx_c", None)],
        {TENANT: tenant}, {}, {}, reveal,
    )
    assert problems == []
    assert document["version"] == 1 and set(document["sandboxes"]) == {"10.0.0.2", "10.0.0.3"}
    assert document["sandboxes"]["10.0.0.2"]["policy"] == {"rules": own}
    assert document["sandboxes"]["10.0.0.3"]["policy"] == {"rules": tenant}


def test_without_any_rules_a_sandbox_gets_none_and_so_is_denied_everything() -> None:
    document, _ = build_document([row("sbx_a", "10.0.0.2")], {}, {}, {}, reveal)
    assert document["sandboxes"]["10.0.0.2"]["policy"] == {"rules": []}


def test_an_address_claimed_twice_belongs_to_the_latest_to_attach() -> None:
    document, _ = build_document([row("sbx_old", "10.0.0.2", at=1.0), row("sbx_new", "10.0.0.2", at=2.0)], {}, {}, {}, reveal)
    assert document["sandboxes"]["10.0.0.2"]["sandbox_id"] == "sbx_new"


def test_secrets_carry_placeholder_and_value_and_deleted_ones_drop_out() -> None:
    document, _ = build_document(
        [row("sbx_a", "10.0.0.2")], {},
        {"sbx_a": {"KEPT": "sandboxd-ph-kept-0001", "GONE": "sandboxd-ph-gone-0001"}},
        {(TENANT, "KEPT"): secret("KEPT")}, reveal,
    )
    (entry,) = document["sandboxes"]["10.0.0.2"]["secrets"]
    assert entry["name"] == "KEPT" and entry["placeholder"] == "sandboxd-ph-kept-0001"
    assert entry["value"] == "value-of-KEPT" and entry["hosts"] == ["api.example.com"]


def test_an_entry_the_proxy_would_refuse_is_left_out_alone() -> None:
    bad = [{"action": "allow", "host": "api.*.example"}]
    document, problems = build_document(
        [row("sbx_bad", "10.0.0.2", policy=bad), row("sbx_ok", "10.0.0.3")], {}, {}, {}, reveal
    )
    assert set(document["sandboxes"]) == {"10.0.0.3"}
    assert len(problems) == 1 and "sbx_bad" in problems[0]


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as store:
        store.insert_tenant(Tenant(TENANT, "a", 0.0))
        yield store


def test_the_published_file_is_encrypted_and_what_the_proxy_reads(store: Store, tmp_path: Path) -> None:
    box = SecretBox(ensure_key_file(tmp_path / "secrets.key"))
    key = ensure_key_file(tmp_path / "state.key")
    store.put_secret(SecretRecord(TENANT, "TOKEN", box.seal(TENANT, "TOKEN", "the-real-value"), ["api.example.com"],
                                  None, False, False, 1.0, 1.0))
    store.insert_sandbox_egress(row("sbx_a", None), {"TOKEN": "sandboxd-ph-0123456789ab"})
    store.set_sandbox_ip("sbx_a", "10.0.0.2", 5.0)
    publisher = StatePublisher(store, box, tmp_path / "state.json", key)
    publisher.publish()
    assert b"the-real-value" not in (tmp_path / "state.json").read_bytes()
    state = read_state_file(tmp_path / "state.json", key)
    entry = state.sandboxes["10.0.0.2"]
    assert entry.sandbox_id == "sbx_a" and entry.secrets.secrets[0].value == "the-real-value"


def test_an_address_that_changed_hands_must_settle_before_use(store: Store, tmp_path: Path) -> None:
    now = [100.0]
    publisher = StatePublisher(
        store, SecretBox(b"k" * 32), tmp_path / "state.json", b"s" * 32, reload_grace_s=0.5, clock=lambda: now[0]
    )
    store.insert_sandbox_egress(row("sbx_a", None), {})
    publisher.publish()
    assert publisher.settle_delay("10.0.0.2") == 0.0
    store.set_sandbox_ip("sbx_a", "10.0.0.2", 1.0)
    publisher.publish()
    assert publisher.settle_delay("10.0.0.2") == pytest.approx(0.5)
    now[0] += 0.3
    assert publisher.settle_delay("10.0.0.2") == pytest.approx(0.2)
    now[0] += 0.3
    publisher.publish()
    assert publisher.settle_delay("10.0.0.2") == 0.0


def test_the_grace_covers_the_proxys_poll() -> None:
    from egress_proxy.loader import POLL_SECONDS
    from sandboxd.egress.state import RELOAD_GRACE_S

    assert RELOAD_GRACE_S > POLL_SECONDS
