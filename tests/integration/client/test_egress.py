"""Egress policy, egress log and secrets through the SDK, against a real daemon and its real egress proxy.

No test here needs the internet: a refused request is answered by the proxy itself,
before any name is resolved.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from sandboxd.client import Client, EgressLog, EgressRule, Sandbox
from sandboxd.errors import InvalidRequest, NotFound


def wait_for_blocked(sbx: Sandbox, host: str, timeout_s: float = 5.0) -> EgressLog:
    """The log once it shows a refused request to ``host``; the daemon ingests the proxy's records a moment later."""
    deadline = time.monotonic() + timeout_s
    while True:
        log = sbx.egress.log(blocked=True, host=host)
        if log.records:
            return log
        assert time.monotonic() < deadline, f"no refused request to {host} in the egress log within {timeout_s}s"
        time.sleep(0.05)


def test_policy_set_read_enforced_logged_and_cleared(sbx: Sandbox) -> None:
    host = f"blocked-{secrets.token_hex(4)}.example"
    policy = sbx.egress.set_policy(
        [EgressRule(action="allow", host="pypi.org", port=443)], allow=["files.pythonhosted.org"], deny=[host]
    )
    assert policy.source == "sandbox"
    assert sbx.egress.policy().rules == policy.rules
    assert {"action": "deny", "host": host} in policy.rules

    result = sbx.exec(f"curl -sS http://{host}/page")
    assert "blocked" in result.stdout and host in result.stdout

    log = wait_for_blocked(sbx, host)
    entry = log.records[0]
    assert (entry.host, entry.blocked, entry.status) == (host, True, 403)
    assert entry.reason
    assert sbx.egress.log(blocked=False, host=host).records == []

    assert sbx.egress.clear_policy().source in ("tenant", "default")


def test_bad_rules_are_refused_with_the_reason(sbx: Sandbox) -> None:
    with pytest.raises(InvalidRequest, match="port"):
        sbx.egress.set_policy(allow=["pypi.org:99999"])
    with pytest.raises(InvalidRequest):
        sbx.egress.set_policy([{"action": "allow", "host": "exa mple.com"}])


@pytest.fixture
def secret_name(client: Client) -> Iterator[str]:
    name = f"SDK_TOKEN_{secrets.token_hex(3).upper()}"
    yield name
    try:
        client.secrets.delete(name)
    except NotFound:
        pass


def test_secrets_put_list_use_and_delete(client: Client, secret_name: str) -> None:
    value = "sdk-" + secrets.token_hex(16)
    info = client.secrets.put(
        secret_name, value, hosts=["api.example.com"], header="Authorization: Bearer {value}"
    )
    assert (info.name, info.hosts) == (secret_name, ["api.example.com"])
    assert info.inject == {"type": "header", "header": "Authorization", "template": "Bearer {value}"}
    listed = {s.name: s for s in client.secrets.list()}
    assert secret_name in listed
    assert value not in listed[secret_name].model_dump_json()

    with client.sandboxes.create(secrets=[secret_name], egress=["api.example.com"]) as sbx:
        placeholder = sbx.exec(f"printenv {secret_name}").stdout.strip()
        assert placeholder and placeholder != value
        assert sbx.egress.policy().rules == [{"action": "allow", "host": "api.example.com"}]

    client.secrets.delete(secret_name)
    with pytest.raises(NotFound):
        client.secrets.get(secret_name)


def test_another_tenant_sees_neither_policy_nor_log(sbx: Sandbox, other_tenant: Client) -> None:
    stranger = Sandbox(other_tenant, sbx.info, keep=True)
    with pytest.raises(NotFound):
        stranger.egress.policy()
    with pytest.raises(NotFound):
        stranger.egress.log()
