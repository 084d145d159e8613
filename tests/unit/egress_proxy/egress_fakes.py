"""Fake flows and a fake resolver for driving the egress addons without a network.

The addons run as one chain inside ``taddons.context()``, in the same order as
``egress_proxy/addon.py``, so a test sees what mitmproxy would do with a request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.proxy.layers.http import (
    HttpConnectHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from mitmproxy.test import taddons, tflow

from egress_proxy.audit import EgressAudit
from egress_proxy.identify import Identify
from egress_proxy.injection import Secrets
from egress_proxy.policy import Policy
from egress_proxy.record import METADATA_KEY, EgressRecord
from egress_proxy.scrub import Scrub
from egress_proxy.state import StateHolder, parse_state

SANDBOX_IP = "10.0.0.2"
PH = "sandboxd-ph-0123456789ab"
VALUE = "ghp_REALVALUE123456"

DNS = {
    "api.example.com": ["93.184.216.34"],
    "other.example.com": ["93.184.216.35"],
    "api.github.com": ["140.82.112.5"],
    "rebind.example.com": ["93.184.216.36", "10.9.9.9"],
    "db.internal": ["10.0.0.50"],
    "metadata.example.com": ["169.254.169.254"],
}


async def fake_resolve(host: str, port: int) -> list[str]:
    if host[0].isdigit() or ":" in host:
        return [host]
    if host not in DNS:
        raise OSError(-2, "Name or service not known")
    return DNS[host]


def sandbox(rules: list[dict[str, Any]] | None = None, secrets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "sandbox_id": "sbx_test",
        "tenant_id": "tnt_test",
        "policy": {"rules": rules if rules is not None else [{"action": "allow", "host": "api.example.com"}]},
        "secrets": secrets or [],
    }


def github_secret(**extra: Any) -> dict[str, Any]:
    return {
        "name": "GITHUB_TOKEN",
        "placeholder": PH,
        "value": VALUE,
        "hosts": ["api.github.com"],
        "inject": None,
        **extra,
    }


def make_request_flow(url: str, method: str = "GET", headers: dict[str, str] | None = None,
                      body: bytes = b"", client_ip: str = SANDBOX_IP) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.client_conn.peername = (client_ip, 40000)
    flow.client_conn.sni = None
    flow.request = http.Request.make(method, url, body)
    # Set after construction: Request.make rewrites a Host header to match the URL.
    flow.request.headers["host"] = flow.request.host
    for name, value in (headers or {}).items():
        flow.request.headers[name] = value
    flow.request.timestamp_start = time.time()
    return flow


def make_connect_flow(host: str, port: int = 443, client_ip: str = SANDBOX_IP) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.client_conn.peername = (client_ip, 40000)
    flow.client_conn.sni = None
    now = time.time()
    flow.request = http.Request(host, port, b"CONNECT", b"", f"{host}:{port}".encode(), b"", b"HTTP/1.1",
                                http.Headers(), b"", None, now, now)
    return flow


def inner_flow(connect: http.HTTPFlow, path: str = "/", method: str = "GET",
               host_header: str | None = None, headers: dict[str, str] | None = None, body: bytes = b"") -> http.HTTPFlow:
    """A request inside the tunnel, as mitmproxy builds it: same client, URL host = connection address."""
    flow = tflow.tflow()
    flow.client_conn = connect.client_conn
    flow.server_conn = connect.server_conn
    address, port = connect.request.host, connect.request.port
    flow.request = http.Request.make(method, f"https://{address}:{port}{path}", body)
    flow.request.headers["host"] = host_header or connect.server_conn.sni or address
    for name, value in (headers or {}).items():
        flow.request.headers[name] = value
    flow.request.timestamp_start = time.time()
    return flow


def respond(flow: http.HTTPFlow, status: int = 200, body: bytes = b"ok", headers: dict[str, str] | None = None) -> None:
    """Stand in for the upstream: attach a response unless the proxy already answered."""
    if flow.response is None:
        flow.response = http.Response.make(status, body)
        # Set after construction so a test can declare framing that differs from ``body``.
        for name, value in (headers or {}).items():
            flow.response.headers[name] = value


def record(flow: http.HTTPFlow) -> EgressRecord:
    value = flow.metadata[METADATA_KEY]
    assert isinstance(value, EgressRecord)
    return value


@dataclass
class Chain:
    """The addons in production order; mitmproxy calls the hooks of ``addons`` children in order."""

    holder: StateHolder
    addons: list[Any]
    tctx: taddons.context
    audit_path: Path

    def set_state(self, **sandboxes: Any) -> None:
        self.holder.current = parse_state({"version": 1, "sandboxes": sandboxes})

    async def connect(self, flow: http.HTTPFlow) -> http.HTTPFlow:
        await self.tctx.master.addons.invoke_addon(self, HttpConnectHook(flow))
        return flow

    async def run(self, flow: http.HTTPFlow, **response: Any) -> http.HTTPFlow:
        """Request hooks, then (unless refused) an upstream response, then response hooks."""
        invoke = self.tctx.master.addons.invoke_addon
        await invoke(self, HttpRequestHeadersHook(flow))
        await invoke(self, HttpRequestHook(flow))
        respond(flow, **response)
        await invoke(self, HttpResponseHeadersHook(flow))
        await invoke(self, HttpResponseHook(flow))
        return flow


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    holder = StateHolder()
    audit = EgressAudit()
    addons: list[Any] = [Identify(holder), Policy(resolver=fake_resolve), Secrets(), Scrub(), audit]
    with taddons.context(*addons) as tctx:
        audit_path = tmp_path / "audit.jsonl"
        tctx.configure(audit, egress_audit=str(audit_path))
        built = Chain(holder, addons, tctx, audit_path)
        built.set_state(**{SANDBOX_IP: sandbox()})
        yield built
        audit.done()
