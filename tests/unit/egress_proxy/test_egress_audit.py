from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mitmproxy import flow as mflow
from mitmproxy.proxy.layers.http import HttpRequestHeadersHook

from egress_proxy.audit import _iso_utc
from tests.unit.egress_proxy.egress_fakes import (
    PH,
    SANDBOX_IP,
    VALUE,
    Chain,
    github_secret,
    make_connect_flow,
    make_request_flow,
    sandbox,
)

RULES = [{"action": "allow", "host": "api.github.com"}]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_timestamps_are_utc_with_milliseconds() -> None:
    assert _iso_utc(0.5) == "1970-01-01T00:00:00.500Z"
    assert _iso_utc(1700000000.0421) == "2023-11-14T22:13:20.042Z"


async def test_allowed_request_line(chain: Chain) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox(RULES, [github_secret(allow_in_query=True, inject={"type": "header", "header": "Authorization", "template": "Bearer {value}"})])})
    await chain.run(make_request_flow(f"https://api.github.com/repos?key={PH}&page=2", "POST", body=b"hello"), body=b"0123456789")
    [line] = lines(chain.audit_path)
    assert line["sandbox_id"] == "sbx_test" and line["tenant_id"] == "tnt_test"
    assert line["client_ip"] == SANDBOX_IP
    assert (line["method"], line["scheme"], line["host"], line["port"]) == ("POST", "https", "api.github.com", 443)
    assert line["path"] == "/repos?key=REDACTED&page=REDACTED"
    assert line["status"] == 200 and line["blocked"] is False and line["reason"] is None
    assert line["bytes_out"] == 5
    assert line["secrets"] == ["GITHUB_TOKEN"]
    assert line["ts"].endswith("Z") and line["duration_ms"] >= 0
    text = chain.audit_path.read_text()
    assert VALUE not in text and PH not in text


async def test_blocked_request_line_names_the_secret_not_the_placeholder(chain: Chain) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox(RULES + [{"action": "allow", "host": "api.example.com"}], [github_secret()])})
    await chain.run(make_request_flow(f"https://api.example.com/{PH}/x", headers={"x": PH}))
    [line] = lines(chain.audit_path)
    assert line["blocked"] is True and line["status"] == 403
    assert "GITHUB_TOKEN" in line["reason"]
    assert line["path"] == "/{GITHUB_TOKEN}/x"
    assert line["bytes_out"] == 0
    assert PH not in chain.audit_path.read_text()


async def test_unknown_client_line(chain: Chain) -> None:
    await chain.run(make_request_flow("http://api.example.com/", client_ip="10.9.9.9"))
    [line] = lines(chain.audit_path)
    assert line["reason"] == "unknown client" and line["sandbox_id"] is None and line["client_ip"] == "10.9.9.9"


async def test_refused_connect_line(chain: Chain) -> None:
    flow = await chain.connect(make_connect_flow("evil.example", 8443))
    chain.addons[-1].http_connect_error(flow)
    [line] = lines(chain.audit_path)
    assert (line["method"], line["host"], line["port"], line["scheme"], line["path"]) == ("CONNECT", "evil.example", 8443, None, None)
    assert line["blocked"] is True and line["status"] == 403


async def test_error_is_recorded_once(chain: Chain) -> None:
    flow = make_request_flow("http://api.example.com/")
    await chain.tctx.master.addons.invoke_addon(chain, HttpRequestHeadersHook(flow))
    flow.error = mflow.Error("Connection refused")
    chain.addons[-1].error(flow)
    chain.addons[-1].error(flow)
    [line] = lines(chain.audit_path)
    assert line["status"] is None and line["reason"] == "Connection refused" and line["blocked"] is False


async def test_rotated_file_is_reopened(chain: Chain, monkeypatch: Any) -> None:
    await chain.run(make_request_flow("http://api.example.com/1"))
    rotated = chain.audit_path.with_suffix(".1")
    os.rename(chain.audit_path, rotated)
    monkeypatch.setattr("egress_proxy.audit._REOPEN_CHECK_SECONDS", 0.0)
    await chain.run(make_request_flow("http://api.example.com/2"))
    assert [line["path"] for line in lines(rotated)] == ["/1"]
    assert [line["path"] for line in lines(chain.audit_path)] == ["/2"]
