"""`sandboxd tenants / keys / audit` through a real process."""

from __future__ import annotations

import json
import secrets

from tests.integration.cli.conftest import Run
from tests.integration.conftest import DaemonProcess


def test_tenants_and_keys(sandboxd: Run) -> None:
    name = "cli-" + secrets.token_hex(3)
    created = sandboxd("tenants", "create", name, "--json")
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    assert name in {t["name"] for t in json.loads(sandboxd("tenants", "ls", "--json").stdout)}
    assert name in sandboxd("tenants", "ls").stdout

    made = sandboxd("keys", "create", "--tenant", name, "--name", "ci")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert "only time" in made.stderr
    keys = json.loads(sandboxd("keys", "ls", "--tenant", tenant["id"], "--json").stdout)
    assert [(k["name"], k.get("key")) for k in keys] == [("ci", None)]

    assert json.loads(sandboxd("ls", "--json", key=key).stdout) == []
    not_admin = sandboxd("tenants", "ls", key=key)
    assert not_admin.returncode == 4 and "admin" in not_admin.stderr
    assert sandboxd("keys", "revoke", keys[0]["id"]).returncode == 0
    assert sandboxd("ls", key=key).returncode == 4
    assert sandboxd("keys", "create", "--tenant", "no-such-tenant-" + name).returncode == 3


def test_audit_lists_and_verifies(sandboxd: Run, sandbox_id: str) -> None:
    assert sandboxd("exec", sandbox_id, "--", "true").returncode == 0
    records = json.loads(sandboxd("audit", "--sandbox", sandbox_id, "--action", "exec", "--json").stdout)
    assert records and all(r["sandbox_id"] == sandbox_id and r["action"] == "exec" for r in records)
    listed = sandboxd("audit", "--sandbox", sandbox_id, "--limit", "1")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 2
    remote = sandboxd("audit", "verify", "--remote")
    assert remote.returncode == 0 and "intact" in remote.stdout


def test_local_audit_verify_still_reads_the_database(sandboxd: Run, daemon: DaemonProcess) -> None:
    local = sandboxd("audit", "verify", "--data-dir", str(daemon.data_dir))
    assert local.returncode == 0, local.stderr
    assert local.stdout.startswith("audit chain intact: ")
