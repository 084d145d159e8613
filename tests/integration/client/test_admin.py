"""Tenants, keys and the audit trail through the SDK."""

from __future__ import annotations

import secrets

import pytest

from sandboxd.client import Client, Sandbox
from sandboxd.errors import Forbidden, Unauthenticated
from tests.integration.conftest import DaemonProcess


def test_tenant_and_key_lifecycle(client: Client, daemon: DaemonProcess) -> None:
    name = "sdk-admin-" + secrets.token_hex(3)
    tenant = client.tenants.create(name)
    assert name in {t.name for t in client.tenants.list()}
    key = client.keys.create(tenant.id, name="temp")
    assert key.key and key.tenant_id == tenant.id and not key.admin
    assert key.id in {k.id for k in client.keys.list(tenant_id=tenant.id)}
    with Client(daemon.url, key.key) as member:
        assert member.sandboxes.list() == []
        with pytest.raises(Forbidden):
            member.tenants.list()
        client.keys.revoke(key.id)
        with pytest.raises(Unauthenticated):
            member.sandboxes.list()
    assert next(k for k in client.keys.list(tenant_id=tenant.id) if k.id == key.id).revoked_at is not None


def test_audit_records_what_the_sdk_did(client: Client, sbx: Sandbox) -> None:
    sbx.exec(["true"])
    records = client.audit.query(sandbox_id=sbx.id)
    assert "exec" in {r.action for r in records}
    assert all(r.sandbox_id == sbx.id for r in records)
    assert client.audit.verify().ok
