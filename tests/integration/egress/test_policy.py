"""Egress policies at runtime: per sandbox, the tenant default, and what the proxy refuses."""

from __future__ import annotations

import time

import httpx

from tests.integration.egress.conftest import Shell, allow, wait_for_log
from tests.integration.egress.upstream import Upstream


def status_of(sh: Shell, sandbox_id: str, url: str, *curl_args: str) -> str:
    """The proxy's answer: to the request, or (when the tunnel itself was refused) to the CONNECT."""
    result = sh(sandbox_id, f"curl -sS -o /dev/null -w '%{{http_code}} %{{http_connect}}' {' '.join(curl_args)} {url}")
    request, connect = result["stdout"].split()
    return request if request != "000" else connect


def test_a_policy_change_applies_to_the_next_request(
    api: httpx.Client, upstream: Upstream, make_sandbox, sh: Shell
) -> None:
    sid = make_sandbox(egress=allow(upstream.address))["id"]
    url = f"{upstream.base}/ok"
    assert status_of(sh, sid, url) == "200"
    policy = api.get(f"/v1/sandboxes/{sid}/egress/policy").json()
    assert policy["source"] == "sandbox" and policy["rules"] == [{"action": "allow", "host": upstream.address}]

    deny = {"rules": [{"action": "allow", "host": upstream.address},
                      {"action": "deny", "host": upstream.address, "path_prefix": "/ok", "name": "no-ok"}]}
    changed_at = time.monotonic()
    response = api.put(f"/v1/sandboxes/{sid}/egress/policy", json=deny)
    assert response.status_code == 200 and response.json()["source"] == "sandbox"
    # The proxy promises a change within a second; the first request after that must see it.
    while status_of(sh, sid, url) != "403":
        assert time.monotonic() - changed_at < 1.5, "the new policy was not in force within 1.5 s"
    refusal = sh(sid, f"curl -sS {url}")["stdout"]
    assert "no-ok" in refusal and "blocked" in refusal

    cleared = api.delete(f"/v1/sandboxes/{sid}/egress/policy").json()
    assert cleared["source"] in ("default", "tenant")
    audit = api.get("/v1/audit", params={"sandbox_id": sid, "action": "sandbox.egress_policy"}).json()["records"]
    assert [r["args"] for r in audit] == [
        {"rules": 2, "allow": [upstream.address], "deny": [upstream.address]},
        {"default": True},
    ]


def test_sandboxes_without_rules_follow_the_tenant_default_live(
    api: httpx.Client, upstream: Upstream, make_sandbox, sh: Shell
) -> None:
    original = api.get("/v1/egress/policy").json()
    try:
        api.put("/v1/egress/policy", json={"rules": []})
        sid = make_sandbox()["id"]
        url = f"{upstream.base}/ok"
        assert status_of(sh, sid, url) == "403", "with no rules anywhere, everything is denied"
        assert api.get(f"/v1/sandboxes/{sid}/egress/policy").json()["source"] == "tenant"

        opened = api.put("/v1/egress/policy", json=allow(upstream.address)).json()
        assert opened["source"] == "tenant"
        deadline = time.monotonic() + 2
        while status_of(sh, sid, url) != "200":
            assert time.monotonic() < deadline, "the tenant default did not reach the sandbox"
        # A sandbox with rules of its own is not affected by the default.
        own = make_sandbox(egress={"rules": [{"action": "allow", "host": "pypi.org"}]})["id"]
        assert status_of(sh, own, url) == "403"
    finally:
        api.put("/v1/egress/policy", json={"rules": original["rules"]})


def test_bad_rules_are_refused_with_what_to_fix(api: httpx.Client, make_sandbox) -> None:
    cases = {
        "bad action": ({"action": "permit", "host": "a.example"}, "action"),
        "no host": ({"action": "allow"}, "host"),
        "port out of range": ({"action": "allow", "host": "a.example", "port": 70000}, "port"),
        "relative path": ({"action": "allow", "host": "a.example", "path_prefix": "v1/"}, "path_prefix"),
        "unknown field": ({"action": "allow", "host": "a.example", "hosts": ["x"]}, "unknown field"),
        "wildcard in the middle": ({"action": "allow", "host": "api.*.example"}, "host"),
    }
    sid = make_sandbox()["id"]
    for case, (rule, expected) in cases.items():
        for response in (
            api.post("/v1/sandboxes", json={"egress": {"rules": [rule]}}),
            api.put(f"/v1/sandboxes/{sid}/egress/policy", json={"rules": [rule]}),
            api.put("/v1/egress/policy", json={"rules": [rule]}),
        ):
            assert response.status_code == 422, (case, response.text)
            assert expected in response.json()["message"], (case, response.text)


def test_domain_fronting_is_refused(api: httpx.Client, upstream: Upstream, make_sandbox, sh: Shell) -> None:
    sid = make_sandbox(egress=allow(upstream.address))["id"]
    upstream.clear()
    # The tunnel is opened to an allowed host, the request inside names another.
    fronted = sh(sid, f"curl -sS -w '\\n%{{http_code}}' -H 'Host: pypi.org' {upstream.base}/ok")
    assert fronted["stdout"].endswith("\n403"), fronted
    assert upstream.received == []
    # And the TLS name must match the tunnel too: SNI for another host inside an allowed CONNECT.
    sni = sh(sid, f"curl -sS -w '\\n%{{http_code}}' --connect-to pypi.org:443:{upstream.address}:{upstream.port} https://pypi.org/ok")
    assert not sni["stdout"].endswith("\n200"), sni
    assert upstream.received == []
    records = wait_for_log(api, sid, lambda r: len(r) >= 2)
    assert all(r["blocked"] for r in records)
