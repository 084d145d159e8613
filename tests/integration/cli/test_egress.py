"""`sandboxd secrets ...` and `sandboxd egress ...` through a real process, against the real egress proxy."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.cli.conftest import Run


@pytest.fixture
def secret_name(admin: httpx.Client) -> Iterator[str]:
    name = f"CLI_TOKEN_{secrets.token_hex(3).upper()}"
    yield name
    admin.delete(f"/v1/secrets/{name}")


def test_secret_value_comes_from_stdin_never_from_arguments(sandboxd: Run, secret_name: str) -> None:
    value = "cli-" + secrets.token_hex(16)
    stored = sandboxd(
        "secrets", "set", secret_name, "--host", "api.example.com", "--host", "*.example.org",
        "--header", "Authorization: Bearer {value}", "--json",
        input=value + "\n",
    )
    assert stored.returncode == 0, stored.stderr
    body = json.loads(stored.stdout)
    assert (body["name"], body["hosts"]) == (secret_name, ["api.example.com", "*.example.org"])
    assert body["inject"] == {"type": "header", "header": "Authorization", "template": "Bearer {value}"}
    assert value not in stored.stdout + stored.stderr

    table = sandboxd("secrets", "ls")
    row = next(line for line in table.stdout.splitlines() if line.startswith(secret_name))
    assert "api.example.com,*.example.org" in row and "header Authorization" in row
    assert value not in table.stdout

    # No value on stdin (and no terminal to prompt on): a usage error, nothing stored over the old one.
    empty = sandboxd("secrets", "set", secret_name, "--host", "api.example.com")
    assert empty.returncode == 2 and "no value" in empty.stderr
    # A value on the command line is not an option at all.
    assert sandboxd("secrets", "set", secret_name, value, "--host", "a.org", input="x" * 10).returncode == 2
    assert sandboxd("secrets", "set", secret_name, "--host", "a.org", "--basic", "me", "--query", "k").returncode == 2

    assert sandboxd("secrets", "rm", secret_name).stdout.strip() == secret_name
    assert secret_name not in {s["name"] for s in json.loads(sandboxd("secrets", "ls", "--json").stdout)}
    assert sandboxd("secrets", "rm", secret_name).returncode == 3


def test_policy_show_set_enforce_log_and_clear(sandboxd: Run, sandbox_id: str) -> None:
    host = f"blocked-{secrets.token_hex(4)}.example"
    shown = sandboxd("egress", "policy", sandbox_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["source"] in ("tenant", "default")

    changed = sandboxd("egress", "policy", sandbox_id, "--allow", "pypi.org:443", "--deny", host, "--json")
    assert changed.returncode == 0, changed.stderr
    policy = json.loads(changed.stdout)
    assert policy["source"] == "sandbox"
    assert policy["rules"] == [{"action": "deny", "host": host}, {"action": "allow", "host": "pypi.org", "port": 443}]
    table = sandboxd("egress", "policy", sandbox_id)
    assert "its own rules" in table.stderr
    rows = [line.split()[:3] for line in table.stdout.splitlines()[1:]]
    assert rows == [["deny", host, "*"], ["allow", "pypi.org", "443"]]

    refused = sandboxd("exec", sandbox_id, "-c", f"curl -sS http://{host}/x")
    assert "blocked" in refused.stdout

    deadline = time.monotonic() + 5
    while True:
        log = sandboxd("egress", "log", sandbox_id, "--blocked", "--host", host, "--json")
        assert log.returncode == 0, log.stderr
        records = json.loads(log.stdout)["records"]
        if records:
            break
        assert time.monotonic() < deadline, "the refused request never reached the egress log"
        time.sleep(0.05)
    assert (records[0]["host"], records[0]["blocked"]) == (host, True)
    rows = sandboxd("egress", "log", sandbox_id, "--host", host).stdout.splitlines()
    assert rows[0].split()[:3] == ["TIME", "(UTC)", "METHOD"] and "BLOCKED:" in rows[1]
    allowed = sandboxd("egress", "log", sandbox_id, "--allowed", "--host", host, "--json")
    assert json.loads(allowed.stdout)["records"] == []

    bad = sandboxd("egress", "policy", sandbox_id, "--allow", "pypi.org:http")
    assert bad.returncode == 2 and "port" in bad.stderr
    cleared = json.loads(sandboxd("egress", "policy", sandbox_id, "--clear", "--json").stdout)
    assert cleared["source"] in ("tenant", "default")
    assert sandboxd("egress", "log", "sbx_" + "c" * 20).returncode == 3


def test_create_with_allowed_hosts_and_a_secret(sandboxd: Run, secret_name: str, admin: httpx.Client) -> None:
    stored = sandboxd("secrets", "set", secret_name, "--host", "api.example.com", input="s3cret-value-xyz")
    assert stored.returncode == 0, stored.stderr
    created = sandboxd("create", "--allow", "api.example.com", "--secret", secret_name, "--json")
    assert created.returncode == 0, created.stderr
    sid = json.loads(created.stdout)["id"]
    try:
        placeholder = sandboxd("exec", sid, "--", "printenv", secret_name).stdout.strip()
        assert placeholder and placeholder != "s3cret-value-xyz"
        policy = json.loads(sandboxd("egress", "policy", sid, "--json").stdout)
        assert policy["rules"] == [{"action": "allow", "host": "api.example.com"}]
    finally:
        admin.delete(f"/v1/sandboxes/{sid}")
