"""Secrets through the real proxy: the value reaches the upstream and nothing the sandbox can see."""

from __future__ import annotations

import json

import httpx

from tests.integration.conftest import DaemonProcess
from tests.integration.egress.conftest import Shell, allow, wait_for_log
from tests.integration.egress.upstream import Upstream

BEARER = {"type": "header", "header": "Authorization", "template": "Bearer {value}"}


def test_the_value_goes_upstream_and_the_sandbox_only_ever_holds_the_placeholder(
    api: httpx.Client, egress_daemon: DaemonProcess, upstream: Upstream, make_secret, make_sandbox, sh: Shell
) -> None:
    value = make_secret("UPSTREAM_TOKEN", [upstream.address], inject=BEARER)
    sandbox = make_sandbox(secrets=["UPSTREAM_TOKEN"], egress=allow(upstream.address))
    sid = sandbox["id"]
    placeholder = sh(sid, "printf %s \"$UPSTREAM_TOKEN\"")["stdout"]
    assert placeholder.startswith("sandboxd-ph-") and value not in placeholder
    upstream.clear()

    echoed = sh(
        sid,
        f"curl -sS -D /tmp/headers -H \"Authorization: Bearer $UPSTREAM_TOKEN\" {upstream.base}/echo; echo; cat /tmp/headers",
    )
    assert echoed["exit_code"] == 0, echoed
    arrived = [r for r in upstream.received if r.path == "/echo"]
    assert [r.headers["authorization"] for r in arrived] == [f"Bearer {value}"]
    # The upstream echoed the value back in its body and a header; the sandbox got the placeholder.
    assert value not in echoed["stdout"]
    body = json.loads(echoed["stdout"].split("\n", 1)[0])
    assert body["headers"]["authorization"] == f"Bearer {placeholder}"
    assert f"x-echo-authorization: Bearer {placeholder}\r\n" in echoed["stdout"]

    # Injection without the sandbox sending anything: the secret's header is added for its host.
    upstream.clear()
    assert sh(sid, f"curl -sS {upstream.base}/ok")["stdout"] == "ok"
    assert upstream.received[0].headers["authorization"] == f"Bearer {value}"

    # Nowhere inside: environment, any process's environment or arguments, files, error messages.
    # The value comes in on stdin and reaches grep through a pipe, so the search holds it
    # only in memory, never in an argv or environment it would then find.
    search = (
        "read -r V; p() { printf '%s\\n' \"$V\"; }; "
        "cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | grep -c -F -f <(p); "
        "grep -r -s -l -F -f <(p) /etc /home /tmp /workspace /var /opt /run /usr/local 2>/dev/null | wc -l; "
        f"curl -sS https://{upstream.address}:1/ 2>&1 | grep -c -F -f <(p); "
        "env | grep -c -F -f <(p)"
    )
    found = sh(sid, search, stdin=value + "\n")
    assert [int(n) for n in found["stdout"].split()] == [0, 0, 0, 0], found

    # Nor in what sandboxd records or shows.
    log = wait_for_log(api, sid, lambda records: any(r["path"] == "/ok" for r in records))
    assert value not in json.dumps(log)
    assert any(r["secrets"] == ["UPSTREAM_TOKEN"] and r["path"] == "/echo" for r in log)
    assert value not in api.get("/v1/audit", params={"limit": 1000}).text
    assert value not in api.get("/v1/secrets").text
    egress_dir = egress_daemon.data_dir / "egress"
    for path in (egress_dir / "audit.jsonl", egress_dir / "mitmdump.log", egress_dir / "state.json",
                 egress_daemon.data_dir.parent / "daemon.log"):
        assert value.encode() not in path.read_bytes(), path
    assert value.encode() not in (egress_daemon.data_dir / "sandboxd.db").read_bytes()


def test_a_placeholder_bound_for_another_host_is_refused(
    api: httpx.Client, upstream: Upstream, make_secret, make_sandbox, sh: Shell
) -> None:
    value = make_secret("PINNED_TOKEN", [upstream.address])
    sandbox = make_sandbox(secrets=["PINNED_TOKEN"], egress=allow(upstream.address, "localhost"))
    sid = sandbox["id"]
    upstream.clear()

    # localhost is in NO_PROXY; --noproxy '' sends it through the proxy all the same, which then
    # reaches the upstream on the host's loopback (allowed: the rule names localhost exactly).
    refused = sh(sid, f"curl -sS --noproxy '' -w '\\n%{{http_code}}' -H \"X-Key: $PINNED_TOKEN\" https://localhost:{upstream.port}/echo")
    status = refused["stdout"].rsplit("\n", 1)[-1]
    assert status == "403", refused
    assert "PINNED_TOKEN" in refused["stdout"] and value not in refused["stdout"]
    assert upstream.received == [], "nothing may leave for a host the secret is not for"

    # The same request to the secret's own host goes out with the value in place.
    sent = sh(sid, f"curl -sS -H \"X-Key: $PINNED_TOKEN\" {upstream.base}/echo")
    assert upstream.received[-1].headers["x-key"] == value
    assert value not in sent["stdout"]

    wait_for_log(api, sid, lambda records: len(records) == 2)
    blocked = api.get(f"/v1/sandboxes/{sid}/egress/log", params={"blocked": True}).json()["records"]
    assert [(r["host"], r["status"]) for r in blocked] == [("localhost", 403)]
    assert "PINNED_TOKEN" in blocked[0]["reason"]


def test_secrets_api_is_write_only_and_checks_what_it_stores(
    api: httpx.Client, make_secret, make_sandbox, upstream: Upstream
) -> None:
    value = make_secret("LISTED_TOKEN", ["api.example.com", "*.example.org"], inject={"type": "basic", "username": "x"})
    listed = api.get("/v1/secrets").json()["secrets"]
    mine = [s for s in listed if s["name"] == "LISTED_TOKEN"]
    assert mine == [{**mine[0], "hosts": ["api.example.com", "*.example.org"], "inject": {"type": "basic", "username": "x"}}]
    assert "value" not in mine[0] and value not in api.get("/v1/secrets/LISTED_TOKEN").text

    replaced = api.put("/v1/secrets/LISTED_TOKEN", json={"value": "another-value-1", "hosts": ["api.example.com"]})
    assert replaced.status_code == 200 and replaced.json()["hosts"] == ["api.example.com"]

    bad = {
        "short value": ({"value": "abc", "hosts": ["a.example"]}, "at least 6"),
        "wildcard everything": ({"value": "abcdefgh", "hosts": ["*"]}, "may not contain '*'"),
        "header without a name": ({"value": "abcdefgh", "hosts": ["a.example"], "inject": {"type": "header"}}, "inject.header"),
        "unknown field": ({"value": "abcdefgh", "hosts": ["a.example"], "host": "x"}, "unknown field"),
    }
    for case, (body, expected) in bad.items():
        response = api.put("/v1/secrets/BAD_ONE", json=body)
        assert response.status_code == 422 and expected in response.json()["message"], (case, response.text)
        assert "abcdefgh" not in response.text, case
    assert api.put("/v1/secrets/HTTP_PROXY", json={"value": "abcdefgh", "hosts": ["a.example"]}).status_code == 422
    assert api.put("/v1/secrets/1abc", json={"value": "abcdefgh", "hosts": ["a.example"]}).status_code == 422

    unknown = api.post("/v1/sandboxes", json={"secrets": ["NO_SUCH_SECRET"]})
    assert unknown.status_code == 422 and "NO_SUCH_SECRET" in unknown.json()["message"]
    clash = api.post("/v1/sandboxes", json={"secrets": ["LISTED_TOKEN"], "env": {"LISTED_TOKEN": "x"}})
    assert clash.status_code == 422 and "LISTED_TOKEN" in clash.json()["message"]

    assert api.delete("/v1/secrets/LISTED_TOKEN").status_code == 204
    assert api.delete("/v1/secrets/LISTED_TOKEN").status_code == 404
    assert api.get("/v1/secrets/LISTED_TOKEN").status_code == 404


def test_secrets_belong_to_one_tenant(api: httpx.Client, egress_daemon: DaemonProcess, make_secret) -> None:
    make_secret("TENANT_A_TOKEN", ["api.example.com"])
    tenant = api.post("/v1/tenants", json={"name": "egress-b-" + egress_daemon.admin_key[-6:].lower()}).json()
    key = api.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "b"}).json()["key"]
    with httpx.Client(base_url=egress_daemon.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as other:
        assert "TENANT_A_TOKEN" not in other.get("/v1/secrets").text
        assert other.get("/v1/secrets/TENANT_A_TOKEN").status_code == 404
        assert other.delete("/v1/secrets/TENANT_A_TOKEN").status_code == 404
        refused = other.post("/v1/sandboxes", json={"secrets": ["TENANT_A_TOKEN"]})
        assert refused.status_code == 422
