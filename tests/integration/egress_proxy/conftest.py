"""A real mitmdump with the egress addons, a real HTTPS upstream, real httpx clients.

The machine's loopback stands in for the sandbox network: the proxy sees the
test client at 127.0.0.1, which the state file maps to a test sandbox. The
upstream is on loopback too, so the rules name ``localhost`` and ``127.0.0.1``
exactly (that is what lets a sandbox reach a private address).
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.egress_proxy.harness import ProxyProcess, Upstream, UpstreamCerts, free_port, make_upstream_certs

SANDBOX_IP = "127.0.0.1"
PLACEHOLDER = "sandboxd-ph-Zk3x9QfW2mLr7TbY"
VALUE = "ghp_live_value_DO_NOT_LEAK_8f2e41"
LOOPBACK_RULES = [{"action": "allow", "host": "localhost"}, {"action": "allow", "host": "127.0.0.1"}]


def secret(**extra: Any) -> dict[str, Any]:
    return {
        "name": "GITHUB_TOKEN",
        "placeholder": PLACEHOLDER,
        "value": VALUE,
        "hosts": ["localhost"],
        "inject": {"type": "header", "header": "Authorization", "template": "Bearer {value}"},
        **extra,
    }


def sandbox(rules: list[dict[str, Any]] | None = None, secrets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "sandbox_id": "sbx_itest",
        "tenant_id": "tnt_itest",
        "policy": {"rules": list(LOOPBACK_RULES if rules is None else rules)},
        "secrets": [secret()] if secrets is None else secrets,
    }


def sandbox_ssl_context(proxy: ProxyProcess) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(proxy.ca.sandbox_cert))


def client(proxy: ProxyProcess, **transport: Any) -> httpx.Client:
    """What code in a sandbox does: an HTTP client using the proxy and trusting the sandbox CA."""
    return httpx.Client(
        transport=httpx.HTTPTransport(proxy=proxy.url, verify=sandbox_ssl_context(proxy), **transport),
        trust_env=False,
        timeout=30,
    )


def apply_state(proxy: ProxyProcess, sandboxes: dict[str, Any]) -> None:
    """Write a new state and wait (with a deadline) until the proxy answers with it.

    A deny rule for a closed port, named uniquely, marks this version: once a
    request to that port is refused by that name, the proxy has loaded it.
    Sandboxes other than 127.0.0.1 are written as given.
    """
    marker_name, marker_port = f"state-{uuid.uuid4().hex[:8]}", free_port()
    marked = dict(sandboxes)
    if SANDBOX_IP in marked:
        entry = dict(marked[SANDBOX_IP])
        rules = [{"action": "deny", "host": "127.0.0.1", "port": marker_port, "name": marker_name}]
        entry["policy"] = {"rules": rules + list(entry["policy"]["rules"])}
        marked[SANDBOX_IP] = entry
    proxy.write_state(marked)
    if SANDBOX_IP not in marked:
        time.sleep(1.0)  # nothing to observe from 127.0.0.1; the proxy promises one second
        return
    deadline = time.monotonic() + 5
    with client(proxy) as c:
        while marker_name not in c.get(f"http://127.0.0.1:{marker_port}/").text:
            assert time.monotonic() < deadline, "the proxy did not load the new state within 5 s"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def upstream_certs(tmp_path_factory: pytest.TempPathFactory) -> UpstreamCerts:
    return make_upstream_certs(tmp_path_factory.mktemp("upstream"))


@pytest.fixture(scope="module")
def upstream(upstream_certs: UpstreamCerts) -> Iterator[Upstream]:
    with Upstream(upstream_certs) as server:
        yield server


@pytest.fixture(scope="module")
def proxy_process(tmp_path_factory: pytest.TempPathFactory, upstream_certs: UpstreamCerts) -> Iterator[ProxyProcess]:
    process = ProxyProcess(tmp_path_factory.mktemp("proxy"), upstream_certs.ca)
    process.write_state({SANDBOX_IP: sandbox()})
    with process:
        yield process


@pytest.fixture
def proxy(proxy_process: ProxyProcess, upstream: Upstream) -> ProxyProcess:
    """The shared proxy, reset to the default test sandbox, with an empty upstream log."""
    apply_state(proxy_process, {SANDBOX_IP: sandbox()})
    upstream.clear()
    return proxy_process


@pytest.fixture
def base(upstream: Upstream) -> str:
    return f"https://localhost:{upstream.port}"


@pytest.fixture
def ip_base(upstream: Upstream) -> str:
    return f"https://127.0.0.1:{upstream.port}"
