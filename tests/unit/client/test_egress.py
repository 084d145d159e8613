"""Egress policy and log, and secrets, against the fake daemon: what is sent, and that values stay values."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from sandboxd.client import AsyncClient, Client, EgressRule
from sandboxd.errors import InvalidRequest

from .conftest import SANDBOX_ID, FakeDaemon

BASE = f"/v1/sandboxes/{SANDBOX_ID}"


def policy(rules: list[dict], source: str = "sandbox") -> dict:
    return {"tenant_id": "tnt_aaaaaaaaaaaaaaaaaaaa", "sandbox_id": SANDBOX_ID, "rules": rules, "source": source}


def secret(name: str = "GITHUB_TOKEN") -> dict:
    return {
        "name": name,
        "hosts": ["api.github.com"],
        "inject": {"type": "header", "header": "Authorization", "template": "Bearer {value}"},
        "allow_in_body": False,
        "allow_in_query": False,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
    }


LOG = {
    "sandbox_id": SANDBOX_ID,
    "records": [
        {
            "id": 7,
            "ts": "2025-01-01T00:00:00Z",
            "method": "CONNECT",
            "scheme": "https",
            "host": "evil.example",
            "port": 443,
            "path": None,
            "status": 403,
            "bytes_out": 0,
            "bytes_in": 0,
            "duration_ms": 1.0,
            "secrets": [],
            "blocked": True,
            "reason": "no rule allows evil.example",
        }
    ],
    "next_before": None,
}


@pytest.fixture
def egress(fake: FakeDaemon) -> FakeDaemon:
    def echo_policy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=policy(json.loads(request.content)["rules"]))

    fake.on("GET", f"{BASE}/egress/policy", policy([], source="default"))
    fake.on("PUT", f"{BASE}/egress/policy", echo_policy)
    fake.on("DELETE", f"{BASE}/egress/policy", policy([], source="tenant"))
    fake.on("GET", f"{BASE}/egress/log", LOG)
    fake.on("PUT", "/v1/egress/policy", echo_policy)
    fake.on("PUT", "/v1/secrets/GITHUB_TOKEN", httpx.Response(201, json=secret()))
    fake.on("GET", "/v1/secrets", {"secrets": [secret()]})
    fake.on("DELETE", "/v1/secrets/GITHUB_TOKEN", 204)
    return fake


@pytest.fixture
def client(egress: FakeDaemon) -> Iterator[Client]:
    with Client("http://sbx.test", "key", transport=httpx.MockTransport(egress)) as c:
        yield c


@pytest.fixture
async def aclient(egress: FakeDaemon) -> AsyncIterator[AsyncClient]:
    async with AsyncClient("http://sbx.test", "key", transport=httpx.MockTransport(egress.handle_async)) as c:
        yield c


def test_set_policy_from_rules_and_host_lists(client: Client, fake: FakeDaemon) -> None:
    sbx = client.sandboxes.get(SANDBOX_ID)
    assert sbx.egress.policy().source == "default"
    result = sbx.egress.set_policy(
        [EgressRule(action="allow", host="api.github.com", methods=["GET"])],
        allow=["pypi.org:443"],
        deny=["*.internal.example"],
    )
    assert result.rules == [
        {"action": "allow", "host": "api.github.com", "methods": ["GET"]},
        {"action": "deny", "host": "*.internal.example"},
        {"action": "allow", "host": "pypi.org", "port": 443},
    ]
    assert sbx.egress.clear_policy().source == "tenant"
    assert fake.calls()[-1] == ("DELETE", f"{BASE}/egress/policy")


def test_bad_rules_fail_before_any_request(client: Client, fake: FakeDaemon) -> None:
    sbx = client.sandboxes.get(SANDBOX_ID)
    before = len(fake.requests)
    with pytest.raises(InvalidRequest, match="port"):
        sbx.egress.set_policy(allow=["pypi.org:https"])
    with pytest.raises(InvalidRequest, match="action"):
        sbx.egress.set_policy([{"action": "maybe", "host": "x.org"}])
    assert len(fake.requests) == before


def test_log_filters(client: Client, fake: FakeDaemon) -> None:
    log = client.sandboxes.get(SANDBOX_ID).egress.log(blocked=True, host="evil.example", limit=5)
    assert log.records[0].reason == "no rule allows evil.example"
    params = fake.requests[-1].url.params
    assert (params["blocked"], params["host"], params["limit"]) == ("true", "evil.example", "5")


def test_tenant_default_policy(client: Client, fake: FakeDaemon) -> None:
    client.egress.set_policy(allow=["pypi.org"], tenant_id="tnt_bbbbbbbbbbbbbbbbbbbb")
    assert fake.requests[-1].url.params["tenant_id"] == "tnt_bbbbbbbbbbbbbbbbbbbb"
    assert json.loads(fake.bodies[-1]) == {"rules": [{"action": "allow", "host": "pypi.org"}]}


def test_put_secret_sends_the_value_itself(client: Client, fake: FakeDaemon) -> None:
    info = client.secrets.put(
        "GITHUB_TOKEN", "ghp_realvalue123", hosts=["api.github.com"], header="Authorization: Bearer {value}"
    )
    assert info.inject == {"type": "header", "header": "Authorization", "template": "Bearer {value}"}
    body = json.loads(fake.bodies[-1])
    # The API model would dump the value as "**********": the SDK must send the real one.
    assert body["value"] == "ghp_realvalue123"
    assert body["inject"] == {"type": "header", "header": "Authorization", "template": "Bearer {value}"}
    assert [s.name for s in client.secrets.list()] == ["GITHUB_TOKEN"]
    client.secrets.delete("GITHUB_TOKEN")
    assert fake.calls()[-1] == ("DELETE", "/v1/secrets/GITHUB_TOKEN")


def test_put_secret_refuses_unclear_injections_without_echoing_the_value(client: Client, fake: FakeDaemon) -> None:
    before = len(fake.requests)
    with pytest.raises(InvalidRequest, match="at most one") as caught:
        client.secrets.put("T", "value-123456", hosts=["a.org"], header="X-Key: {value}", query="key")
    assert "value-123456" not in caught.value.message
    with pytest.raises(InvalidRequest, match=r"\{value\}"):
        client.secrets.put("T", "value-123456", hosts=["a.org"], header="Authorization: Bearer")
    with pytest.raises(InvalidRequest, match="list"):
        client.secrets.put("T", "value-123456", hosts="a.org")
    assert len(fake.requests) == before


async def test_async_twin(aclient: AsyncClient, fake: FakeDaemon) -> None:
    sbx = await aclient.sandboxes.get(SANDBOX_ID)
    result = await sbx.egress.set_policy(allow=["pypi.org"])
    assert result.rules == [{"action": "allow", "host": "pypi.org"}]
    assert (await sbx.egress.log(blocked=False)).records[0].id == 7
    assert fake.requests[-1].url.params["blocked"] == "false"
    await aclient.secrets.put("GITHUB_TOKEN", "ghp_realvalue123", hosts=["api.github.com"], basic="me")
    assert json.loads(fake.bodies[-1])["inject"] == {"type": "basic", "username": "me"}


def test_create_with_rules_and_secrets(client: Client, fake: FakeDaemon) -> None:
    with client.sandboxes.create(egress=["pypi.org", "api.github.com:443"], secrets=["GITHUB_TOKEN"], keep=True):
        pass
    assert json.loads(fake.bodies[0]) == {
        "egress": {
            "rules": [{"action": "allow", "host": "pypi.org"}, {"action": "allow", "host": "api.github.com", "port": 443}]
        },
        "secrets": ["GITHUB_TOKEN"],
    }
    with client.sandboxes.create(egress=[], keep=True):
        pass
    assert json.loads(fake.bodies[-1]) == {"egress": {"rules": []}}
