from __future__ import annotations

import base64
from typing import Any

from mitmproxy.proxy.layers.http import HttpRequestHeadersHook, HttpRequestHook

from tests.unit.egress_proxy.egress_fakes import (
    PH,
    SANDBOX_IP,
    VALUE,
    Chain,
    github_secret,
    inner_flow,
    make_connect_flow,
    make_request_flow,
    record,
    sandbox,
)

RULES = [{"action": "allow", "host": "api.github.com"}, {"action": "allow", "host": "api.example.com"}]


def with_secret(chain: Chain, **extra: Any) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox(RULES, [github_secret(**extra)])})


def assert_refused_without_leaking(flow: Any, text: str) -> None:
    assert flow.response is not None and flow.response.status_code == 403
    assert text in flow.response.text
    assert VALUE not in flow.response.text
    assert record(flow).blocked is not None and PH not in record(flow).blocked


async def test_placeholder_in_header_becomes_the_value_for_its_host(chain: Chain) -> None:
    with_secret(chain)
    flow = await chain.run(make_request_flow("https://api.github.com/user", headers={"authorization": f"token {PH}"}))
    assert flow.request.headers["authorization"] == f"token {VALUE}"
    assert record(flow).injected == ["GITHUB_TOKEN"]


async def test_placeholder_to_another_host_is_refused(chain: Chain) -> None:
    with_secret(chain)
    flow = await chain.run(make_request_flow("https://api.example.com/", headers={"x-token": PH}))
    assert_refused_without_leaking(flow, "placeholder of secret GITHUB_TOKEN, which may only be sent to api.github.com, not api.example.com")
    assert flow.request.headers["x-token"] == PH


async def test_placeholder_in_body_to_another_host_is_refused(chain: Chain) -> None:
    with_secret(chain, allow_in_body=True)
    flow = await chain.run(make_request_flow("https://api.example.com/", "POST", body=f'{{"t": "{PH}"}}'.encode()))
    assert_refused_without_leaking(flow, "may only be sent to api.github.com")


async def test_query_placeholder_needs_allow_in_query(chain: Chain) -> None:
    with_secret(chain)
    refused = await chain.run(make_request_flow(f"https://api.github.com/x?key={PH}"))
    assert_refused_without_leaking(refused, "is in the query string, which this secret does not allow")
    with_secret(chain, value="v/al ue+1", allow_in_query=True)
    allowed = await chain.run(make_request_flow(f"https://api.github.com/x?key={PH}&a=b"))
    assert allowed.request.path == "/x?key=v%2Fal%20ue%2B1&a=b"


async def test_body_placeholder_needs_allow_in_body(chain: Chain) -> None:
    with_secret(chain)
    body = f'{{"token": "{PH}"}}'.encode()
    refused = await chain.run(make_request_flow("https://api.github.com/x", "POST", body=body))
    assert_refused_without_leaking(refused, "is in the request body, which this secret does not allow")
    with_secret(chain, allow_in_body=True)
    allowed = await chain.run(make_request_flow("https://api.github.com/x", "POST", body=body))
    assert allowed.request.content == f'{{"token": "{VALUE}"}}'.encode()
    assert allowed.request.headers["content-length"] == str(len(allowed.request.content))
    assert record(allowed).injected == ["GITHUB_TOKEN"]


async def test_placeholder_in_path_is_refused(chain: Chain) -> None:
    with_secret(chain)
    flow = await chain.run(make_request_flow(f"https://api.github.com/repos/{PH}/x"))
    assert_refused_without_leaking(flow, "is in the URL path, where placeholders are never replaced")


async def test_injected_header_is_added_and_replaces_the_sandboxes(chain: Chain) -> None:
    with_secret(chain, inject={"type": "header", "header": "Authorization", "template": "Bearer {value}"})
    added = await chain.run(make_request_flow("https://api.github.com/user"))
    assert added.request.headers["authorization"] == f"Bearer {VALUE}"
    replaced = await chain.run(make_request_flow("https://api.github.com/user", headers={"Authorization": "Bearer mine"}))
    assert replaced.request.headers.get_all("authorization") == [f"Bearer {VALUE}"]
    assert record(replaced).injected == ["GITHUB_TOKEN"]
    elsewhere = await chain.run(make_request_flow("https://api.example.com/"))
    assert "authorization" not in elsewhere.request.headers
    assert record(elsewhere).injected == []


async def test_basic_and_query_injection(chain: Chain) -> None:
    with_secret(chain, inject={"type": "basic", "username": "x-access-token"})
    basic = await chain.run(make_request_flow("https://api.github.com/"))
    assert basic.request.headers["authorization"] == "Basic " + base64.b64encode(f"x-access-token:{VALUE}".encode()).decode()
    with_secret(chain, inject={"type": "query", "param": "key"})
    query = await chain.run(make_request_flow("https://api.github.com/x?a=1"))
    assert query.request.query["key"] == VALUE and query.request.query["a"] == "1"


async def test_injection_works_inside_a_tunnel(chain: Chain) -> None:
    with_secret(chain, inject={"type": "header", "header": "Authorization", "template": "Bearer {value}"})
    connect = await chain.connect(make_connect_flow("api.github.com"))
    flow = await chain.run(inner_flow(connect, "/user"))
    assert flow.request.headers["authorization"] == f"Bearer {VALUE}"


async def test_compressed_responses_are_not_requested(chain: Chain) -> None:
    with_secret(chain)
    flow = await chain.run(make_request_flow("https://api.github.com/", headers={"accept-encoding": "gzip, br"}))
    assert flow.request.headers["accept-encoding"] == "identity"


async def test_sandbox_without_secrets_is_untouched(chain: Chain) -> None:
    flow = await chain.run(make_request_flow("https://api.example.com/", headers={"accept-encoding": "gzip", "x-token": PH}))
    assert flow.request.headers["accept-encoding"] == "gzip"
    assert flow.request.headers["x-token"] == PH


def feed(flow: Any, chunks: list[bytes]) -> bytes:
    """What mitmproxy would send upstream for a streamed request body."""
    stream = flow.request.stream
    assert callable(stream)
    out = b""
    for chunk in [*chunks, b""]:
        result = stream(chunk)
        out += result if isinstance(result, bytes) else b"".join(result)
    return out


async def test_large_body_streams_unchanged_and_the_audit_says_why(chain: Chain) -> None:
    with_secret(chain, allow_in_body=True)
    flow = make_request_flow("https://api.github.com/upload", "POST", headers={"content-length": str(50 * 2**20)})
    await chain.tctx.master.addons.invoke_addon(chain, HttpRequestHeadersHook(flow))
    assert flow.response is None
    assert flow.request.headers["content-length"] == str(50 * 2**20), "the declared length still holds"
    body = b"a" * 100 + PH.encode() + b"b" * 100
    sent = feed(flow, [body[:110], body[110:]])
    assert sent == body
    await chain.tctx.master.addons.invoke_addon(chain, HttpRequestHook(flow))
    assert record(flow).injected == []
    note = record(flow).note
    assert note is not None and "placeholder of GITHUB_TOKEN, passed on unreplaced" in note and PH not in note
    assert record(flow).request_stream is not None and record(flow).request_stream.bytes_out == len(sent)


async def test_chunked_body_is_streamed(chain: Chain) -> None:
    with_secret(chain)
    flow = make_request_flow("https://api.github.com/upload", "POST", headers={"transfer-encoding": "chunked"})
    await chain.tctx.master.addons.invoke_addon(chain, HttpRequestHeadersHook(flow))
    assert feed(flow, [b"plain"]) == b"plain"
    await chain.tctx.master.addons.invoke_addon(chain, HttpRequestHook(flow))
    assert record(flow).note is None


async def test_large_body_without_secrets_streams_through_a_counter(chain: Chain) -> None:
    flow = make_request_flow("https://api.example.com/upload", "PUT", headers={"content-length": str(2 * 2**20)})
    await chain.tctx.master.addons.invoke_addon(chain, HttpRequestHeadersHook(flow))
    assert feed(flow, [b"abc", b"def"]) == b"abcdef"
    assert record(flow).request_stream is not None and record(flow).request_stream.bytes_out == 6
