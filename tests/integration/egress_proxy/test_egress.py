"""The egress proxy end to end: mitmdump + addons between a real client and a real HTTPS upstream."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.egress_proxy.conftest import (
    LOOPBACK_RULES,
    PLACEHOLDER,
    SANDBOX_IP,
    VALUE,
    apply_state,
    client,
    sandbox,
    sandbox_ssl_context,
    secret,
)
from tests.integration.egress_proxy.harness import ProxyProcess, RssSampler, Upstream


def audit_lines_since(proxy: ProxyProcess, offset: int) -> list[dict[str, Any]]:
    with open(proxy.audit_path, "rb") as f:
        f.seek(offset)
        return [json.loads(line) for line in f.read().splitlines()]


def audit_offset(proxy: ProxyProcess) -> int:
    return proxy.audit_path.stat().st_size if proxy.audit_path.exists() else 0


def test_injected_secret_arrives_upstream(proxy: ProxyProcess, upstream: Upstream, base: str) -> None:
    with client(proxy) as c:
        response = c.get(f"{base}/ok")
    assert response.status_code == 200 and response.text == "ok"
    [received] = upstream.received
    assert received.header("authorization") == f"Bearer {VALUE}"


def test_placeholder_in_a_header_is_replaced_for_its_host(proxy: ProxyProcess, upstream: Upstream, base: str) -> None:
    with client(proxy) as c:
        assert c.get(f"{base}/ok", headers={"x-api-key": PLACEHOLDER}).status_code == 200
    assert upstream.received[0].header("x-api-key") == VALUE


def test_echoed_secret_is_scrubbed_from_headers_and_body(proxy: ProxyProcess, upstream: Upstream, base: str) -> None:
    with client(proxy) as c:
        response = c.post(f"{base}/echo", headers={"x-api-key": PLACEHOLDER}, content=b"hello")
    assert response.status_code == 200
    assert response.headers["x-echo-authorization"] == f"Bearer {PLACEHOLDER}"
    echoed = response.json()
    assert ["X-Api-Key", PLACEHOLDER] in echoed["headers"] or ["x-api-key", PLACEHOLDER] in echoed["headers"]
    assert VALUE not in response.text and VALUE not in str(response.headers)
    assert upstream.received[0].header("x-api-key") == VALUE, "the upstream did get the real value"


def test_streamed_chunked_body_is_scrubbed_across_chunks(proxy: ProxyProcess, base: str) -> None:
    with client(proxy) as c, c.stream("GET", f"{base}/stream") as response:
        chunks = list(response.iter_raw())
    body = b"".join(chunks)
    assert body == f"start:Bearer {PLACEHOLDER}:end".encode()
    assert len(chunks) > 1, "the body arrived in pieces, as it was streamed"


def test_small_gzip_echo_is_scrubbed(proxy: ProxyProcess, base: str) -> None:
    with client(proxy) as c:
        response = c.get(f"{base}/gzip-echo")
    assert response.status_code == 200
    assert VALUE not in response.text and f"Bearer {PLACEHOLDER}" in response.text


def test_large_gzip_echo_is_decoded_while_streaming_and_scrubbed(proxy: ProxyProcess, base: str) -> None:
    with client(proxy) as c:
        response = c.get(f"{base}/gzip-echo?pad=1000000")
    assert response.status_code == 200
    assert "content-encoding" not in response.headers, "decoded on the way through"
    assert response.headers["transfer-encoding"] == "chunked"
    assert VALUE not in response.text and f"Bearer {PLACEHOLDER}" in response.text
    assert len(response.json()["pad"]) == 1000000


def test_placeholder_to_a_host_not_allowed_is_refused(proxy: ProxyProcess, upstream: Upstream, ip_base: str) -> None:
    with client(proxy) as c:
        response = c.get(f"{ip_base}/ok", headers={"x-api-key": PLACEHOLDER})
    assert response.status_code == 403
    assert "secret GITHUB_TOKEN, which may only be sent to localhost, not 127.0.0.1" in response.text
    assert VALUE not in response.text
    assert upstream.received == []


def test_refused_connect_says_why_in_status_line_and_body(proxy: ProxyProcess, upstream: Upstream) -> None:
    apply_state(proxy, {SANDBOX_IP: sandbox([{"action": "allow", "host": "localhost"}])})
    with client(proxy) as c, pytest.raises(httpx.ProxyError) as excinfo:
        c.get(f"https://127.0.0.1:{upstream.port}/x")
    assert f"no allow rule matches 127.0.0.1:{upstream.port} (default deny)" in str(excinfo.value)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(f"CONNECT 127.0.0.1:{upstream.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        answer = read_response(s).decode()
    assert answer.startswith("HTTP/1.1 403 blocked by sandboxd egress: no allow rule matches")
    assert f"sandboxd egress: blocked CONNECT 127.0.0.1:{upstream.port}: no allow rule matches" in answer
    assert "Ask the sandbox owner to allow it." in answer
    assert upstream.received == []


def test_refused_request_body_says_why(proxy: ProxyProcess, upstream: Upstream, base: str) -> None:
    apply_state(proxy, {SANDBOX_IP: sandbox(LOOPBACK_RULES + [
        {"action": "deny", "host": "localhost", "methods": ["POST"], "name": "read only"}])})
    with client(proxy) as c:
        response = c.post(f"{base}/echo?x=1", content=b"data")
    assert response.status_code == 403
    assert response.text == (
        f"sandboxd egress: blocked POST https://localhost:{upstream.port}/echo: rule 'read only' "
        f"(deny localhost POST) matches POST localhost:{upstream.port}/echo. Ask the sandbox owner to allow it.\n"
    )
    assert upstream.received == []


def read_response(s: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length body, read off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def test_policy_change_applies_within_a_second_and_keeps_live_connections(
    proxy: ProxyProcess, upstream: Upstream, base: str
) -> None:
    with client(proxy) as c:
        assert c.get(f"{base}/ok").status_code == 200
        proxy.write_state({SANDBOX_IP: sandbox(LOOPBACK_RULES + [
            {"action": "deny", "host": "localhost", "path_prefix": "/echo", "name": "no echo"}])})
        written = time.monotonic()
        while (response := c.get(f"{base}/echo")).status_code != 403:
            assert time.monotonic() - written < 1.0, "the new policy was not applied within one second"
            time.sleep(0.02)
        assert "rule 'no echo'" in response.text
        assert c.get(f"{base}/ok").status_code == 200, "the kept-alive connection still works"
    ports = {r.peer_port for r in upstream.received}
    assert len(ports) == 1, f"one upstream connection served every request, saw {ports}"


def test_domain_fronting_is_refused(proxy: ProxyProcess, upstream: Upstream, base: str) -> None:
    with client(proxy) as c:
        response = c.get(f"{base}/ok", headers={"host": f"127.0.0.1:{upstream.port}"})
    assert response.status_code == 403
    assert "domain fronting is refused" in response.text
    assert upstream.received == []


def test_sni_that_differs_from_connect_target_is_refused(proxy: ProxyProcess, upstream: Upstream) -> None:
    target = f"127.0.0.1:{upstream.port}"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw:
        raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        # The tunnel is for 127.0.0.1, the TLS handshake names localhost.
        with sandbox_ssl_context(proxy).wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(f"GET /ok HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            answer = read_response(tls).decode()
    assert answer.startswith("HTTP/1.1 403")
    assert "the TLS SNI localhost does not match the tunnel's host 127.0.0.1" in answer
    assert upstream.received == []


def test_unknown_client_address_is_refused_and_audited(proxy: ProxyProcess, upstream: Upstream) -> None:
    offset = audit_offset(proxy)
    target = f"localhost:{upstream.port}"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5, source_address=("127.0.0.2", 0)) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        answer = read_response(s).decode()
    assert answer.startswith("HTTP/1.1 403 blocked by sandboxd egress: unknown client")
    assert "no sandbox has the source address 127.0.0.2" in answer
    assert upstream.received == []
    [line] = audit_lines_since(proxy, offset)
    assert line["reason"] == "unknown client" and line["client_ip"] == "127.0.0.2" and line["blocked"] is True
    assert line["method"] == "CONNECT" and line["sandbox_id"] is None


def test_loopback_without_an_explicit_rule_is_refused(proxy: ProxyProcess, upstream: Upstream) -> None:
    apply_state(proxy, {SANDBOX_IP: sandbox([{"action": "allow", "host": "*"}], secrets=[])})
    with client(proxy) as c, pytest.raises(httpx.ProxyError) as excinfo:
        c.get(f"https://localhost:{upstream.port}/ok")
    assert "localhost resolves to 127.0.0.1, a loopback address; only an allow rule naming localhost exactly" in str(excinfo.value)
    with client(proxy) as c:
        plain = c.get(f"http://127.0.0.1:{upstream.port}/ok")
    assert plain.status_code == 403 and "127.0.0.1, a loopback address" in plain.text
    assert upstream.received == []


def test_audit_lines_are_written_with_redacted_query_and_no_secret(proxy: ProxyProcess, base: str, ip_base: str) -> None:
    offset = audit_offset(proxy)
    with client(proxy) as c:
        c.get(f"{base}/echo?key=plain-token&page=2")
        c.get(f"{ip_base}/ok", headers={"x": PLACEHOLDER})
    lines = audit_lines_since(proxy, offset)
    assert [(line["path"], line["status"]) for line in lines] == [("/echo?key=REDACTED&page=REDACTED", 200), ("/ok", 403)]
    allowed, blocked = lines
    assert allowed["secrets"] == ["GITHUB_TOKEN"] and allowed["host"] == "localhost" and allowed["scheme"] == "https"
    assert allowed["sandbox_id"] == "sbx_itest" and allowed["bytes_in"] > 0 and allowed["blocked"] is False
    assert blocked["blocked"] is True and "GITHUB_TOKEN" in blocked["reason"]
    text = Path(proxy.audit_path).read_text()
    assert VALUE not in text and PLACEHOLDER not in text and "plain-token" not in text


def test_raw_tcp_through_a_tunnel_is_cut(proxy: ProxyProcess, upstream: Upstream) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(f"CONNECT 127.0.0.1:{upstream.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert s.recv(1024).startswith(b"HTTP/1.1 200")
        s.sendall(b"\x00\x01binary, not http nor tls\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), "treated as bad HTTP, answered and closed"
    assert not any("WRONG_VERSION_NUMBER" in e for e in upstream.errors), "no raw bytes reached the upstream"


def test_100_mb_download_streams_with_bounded_memory(proxy: ProxyProcess, upstream: Upstream, base: str) -> None:
    size = 100 * 1024 * 1024
    apply_state(proxy, {SANDBOX_IP: sandbox(secrets=[secret(value="never-in-the-filler-" + "q" * 20)])})
    with client(proxy) as c:
        c.get(f"{base}/ok")  # warm up: the CA, the leaf certificate, the connection
        received = 0
        with RssSampler(proxy) as rss:
            started = time.monotonic()
            with c.stream("GET", f"{base}/big?bytes={size}") as response:
                for chunk in response.iter_raw():
                    received += len(chunk)
            elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert received == size
    print(f"\n100 MiB through the proxy (scrubbing): {elapsed:.2f} s, "
          f"RSS baseline {rss.baseline / 2**20:.1f} MiB, peak growth {rss.growth / 2**20:.1f} MiB")
    assert rss.growth < 50 * 2**20, f"the proxy grew by {rss.growth / 2**20:.1f} MiB"


def test_client_sees_our_ca(proxy: ProxyProcess, base: str) -> None:
    with httpx.Client(proxy=proxy.url, trust_env=False, verify=True) as untrusting:
        try:
            untrusting.get(f"{base}/ok")
        except httpx.ConnectError as exc:
            assert "CERTIFICATE_VERIFY_FAILED" in str(exc)
        else:
            raise AssertionError("a client without the sandbox CA must not trust the proxy")


def test_large_upload_streams_through_unchanged(proxy: ProxyProcess, upstream: Upstream, base: str) -> None:
    apply_state(proxy, {SANDBOX_IP: sandbox(secrets=[secret(allow_in_body=True)])})
    filler = b"z" * (3 * 2**20)
    body = filler + PLACEHOLDER.encode() + filler
    offset = audit_offset(proxy)
    with client(proxy) as c:
        response = c.post(f"{base}/ok", content=body)
    assert response.status_code == 200
    [received] = upstream.received
    assert received.body == body and received.header("content-length") == str(len(body))
    [line] = audit_lines_since(proxy, offset)
    assert line["bytes_out"] == len(body)
    assert "carried the placeholder of GITHUB_TOKEN, passed on unreplaced" in line["reason"]

