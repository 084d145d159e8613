from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

from mitmproxy import http

from tests.unit.egress_proxy.egress_fakes import (
    PH,
    SANDBOX_IP,
    VALUE,
    Chain,
    github_secret,
    make_request_flow,
    record,
    sandbox,
)

RULES = [{"action": "allow", "host": "api.github.com"}, {"action": "allow", "host": "api.example.com"}]


def stream_body(flow: http.HTTPFlow, chunks: list[bytes]) -> bytes:
    """What mitmproxy would send to the sandbox for this upstream body."""
    assert flow.response is not None
    stream = flow.response.stream
    assert callable(stream)
    transform: Callable[[bytes], Any] = stream
    out = b""
    for chunk in chunks:
        result = transform(chunk)
        pieces = [result] if isinstance(result, bytes) else list(result)
        assert all(pieces), "an empty chunk would end a chunked body early"
        out += b"".join(pieces)
    end = transform(b"")  # here mitmproxy treats b"" as "nothing more"
    return out + (end if isinstance(end, bytes) else b"".join(end))
    return out


LARGE = {"content-length": str(50 * 2**20)}
CHUNKED = {"transfer-encoding": "chunked"}


def with_secret(chain: Chain) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox(RULES, [github_secret()])})


async def test_headers_and_streamed_body_are_scrubbed_even_for_other_hosts(chain: Chain) -> None:
    with_secret(chain)
    flow = await chain.run(
        make_request_flow("https://api.example.com/echo"),
        headers={"x-echo": f"Bearer {VALUE}", **LARGE},
    )
    assert flow.response is not None
    assert flow.response.headers["x-echo"] == f"Bearer {PH}"
    body = b"prefix " + VALUE.encode() + b" suffix"
    out = stream_body(flow, [body[:10], body[10:13], body[13:]])
    assert out == b"prefix " + PH.encode() + b" suffix"
    assert "content-length" not in flow.response.headers
    assert flow.response.headers["transfer-encoding"] == "chunked"
    assert record(flow).response_stream is not None and record(flow).response_stream.bytes_out == len(out)


async def test_gzip_response_is_decoded_then_scrubbed(chain: Chain) -> None:
    with_secret(chain)
    flow = await chain.run(make_request_flow("https://api.github.com/"), headers={"content-encoding": "gzip", **CHUNKED})
    encoded = gzip.compress(b"token=" + VALUE.encode() * 3)
    out = stream_body(flow, [encoded[i:i + 7] for i in range(0, len(encoded), 7)])
    assert out == b"token=" + PH.encode() * 3
    assert "content-encoding" not in flow.response.headers  # type: ignore[union-attr]


async def test_unknown_encoding_is_not_passed_on(chain: Chain) -> None:
    with_secret(chain)
    flow = await chain.run(make_request_flow("https://api.github.com/"), headers={"content-encoding": "compress", **LARGE})
    assert flow.error is not None
    assert record(flow).failure is not None and "cannot scrub" in record(flow).failure


async def test_bodiless_responses_keep_their_framing(chain: Chain) -> None:
    with_secret(chain)
    head = await chain.run(make_request_flow("https://api.github.com/", "HEAD"), headers={"content-length": "5"})
    assert head.response is not None and head.response.headers["content-length"] == "5"
    not_modified = await chain.run(make_request_flow("https://api.github.com/"), status=304, headers={"etag": "x"})
    assert not_modified.response is not None and "transfer-encoding" not in not_modified.response.headers


async def test_http2_response_gets_no_transfer_encoding(chain: Chain) -> None:
    with_secret(chain)
    request = make_request_flow("https://api.github.com/")
    request.request.http_version = "HTTP/2.0"
    flow = await chain.run(request, headers=LARGE)
    assert flow.response is not None
    assert "content-length" not in flow.response.headers and "transfer-encoding" not in flow.response.headers


async def test_without_secrets_large_bodies_stream_through_a_counter(chain: Chain) -> None:
    flow = await chain.run(make_request_flow("https://api.example.com/"), headers=LARGE)
    assert flow.response is not None and flow.response.headers["content-length"] == LARGE["content-length"]
    assert stream_body(flow, [b"abc", b"def"]) == b"abcdef"
    assert record(flow).response_stream is not None and record(flow).response_stream.bytes_out == 6


async def test_small_bodies_are_scrubbed_whole_with_a_correct_length(chain: Chain) -> None:
    with_secret(chain)
    body = b'{"echo": "' + VALUE.encode() + b'"}'
    flow = await chain.run(make_request_flow("https://api.github.com/"), body=body)
    assert flow.response is not None and not flow.response.stream
    assert flow.response.content == b'{"echo": "' + PH.encode() + b'"}'
    assert flow.response.headers["content-length"] == str(len(flow.response.raw_content or b""))


async def test_small_compressed_bodies_are_scrubbed_and_stay_compressed(chain: Chain) -> None:
    with_secret(chain)
    encoded = gzip.compress(VALUE.encode())
    flow = await chain.run(make_request_flow("https://api.github.com/"), body=encoded, headers={"content-encoding": "gzip"})
    assert flow.response is not None and flow.response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(flow.response.raw_content or b"") == PH.encode()


async def test_small_body_in_an_unknown_encoding_is_not_passed_on(chain: Chain) -> None:
    with_secret(chain)
    flow = await chain.run(make_request_flow("https://api.github.com/"), body=b"\x1f\x9dxx", headers={"content-encoding": "compress"})
    assert flow.error is not None
    assert record(flow).failure is not None and "cannot scrub" in record(flow).failure


async def test_proxy_refusals_are_not_streamed(chain: Chain) -> None:
    flow = await chain.run(make_request_flow("https://evil.example/"))
    assert flow.response is not None and flow.response.status_code == 403
    assert not flow.response.stream


async def test_trailers_are_scrubbed(chain: Chain) -> None:
    with_secret(chain)
    request = make_request_flow("https://api.github.com/")
    request.response = http.Response.make(200, b"", {"x": "y"})
    request.response.trailers = http.Headers(x_echo=VALUE)
    flow = await chain.run(request)
    assert flow.response is not None and flow.response.trailers is not None
    assert flow.response.trailers["x-echo"] == PH
