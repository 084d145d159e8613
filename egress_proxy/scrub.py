"""Scrub: no secret value reaches the sandbox in a response, even from an upstream that echoes.

Every secret of the sandbox is scrubbed, not only the ones injected into this
request: an upstream may hand back a value it received earlier or through
another channel, and the cost is the same handful of ``bytes.replace`` calls.
Values are replaced by their placeholder, so code that compares what it sent
with what came back still sees a consistent token.

Bodies that declare a small length (the common API answer) are taken whole
and scrubbed in ``response``, keeping a correct Content-Length; streaming every
small response cost about a fifth of the proxy's CPU per request. Every other
body streams, never held whole: through a scrubber that carries a short tail
across chunks when the sandbox has secrets, or a byte counter when it has
none. Scrubbing a stream can change its length, so its Content-Length goes and
HTTP/1.1 responses become chunked. Compressed bodies are decoded on the fly
first (see ``egress_proxy.decoding``); compressed small bodies are decoded
whole by mitmproxy.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from egress_proxy.decoding import Decoder, decoder_for
from egress_proxy.record import record_of
from egress_proxy.scrubbing import ByteCounter, Scrubber, StreamScrubber

logger = logging.getLogger(__name__)

_NO_BODY_STATUS = frozenset({204, 304})
BUFFER_LIMIT = 256 * 1024
"""Bodies up to this declared length are taken whole; everything else streams."""


class Scrub:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        response = flow.response
        if record is None or response is None or record.blocked or record.failure:
            return
        scrubber = record.sandbox.secrets.response_scrubber if record.sandbox is not None else None
        if scrubber:
            response.headers.fields = tuple((name, scrubber.scrub(value)) for name, value in response.headers.fields)
        if not _has_body(flow) or _is_small(response):
            return  # buffered by mitmproxy; scrubbed whole in `response`
        if not scrubber:
            record.response_stream = response.stream = ByteCounter()
            return
        decoder = None
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding and encoding != "identity":
            decoder = decoder_for(encoding)
            if decoder is None:
                record.failure = _cannot_scrub(encoding)
                flow.kill()
                return
            del response.headers["content-encoding"]
        _drop_length(flow)
        stream = scrubber.stream()
        record.response_stream = stream
        response.stream = stream if decoder is None else _DecodeThenScrub(decoder, stream)

    def response(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        response = flow.response
        if record is None or response is None or record.blocked or record.failure or record.sandbox is None:
            return
        scrubber = record.sandbox.secrets.response_scrubber
        if not scrubber:
            return
        if response.trailers:
            response.trailers.fields = tuple((name, scrubber.scrub(value)) for name, value in response.trailers.fields)
        if record.response_stream is not None or not response.raw_content:
            return
        try:
            body = response.get_content(strict=True) or b""
        except ValueError:
            record.failure = _cannot_scrub(response.headers.get("content-encoding", ""))
            flow.kill()
            return
        if scrubber.contains_any(body):
            # Re-encodes as the upstream sent it and sets the new Content-Length.
            response.content = scrubber.scrub(body)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        scrubber = _scrubber(flow)
        if scrubber and flow.websocket is not None:
            message = flow.websocket.messages[-1]
            if not message.from_client:
                message.content = scrubber.scrub(message.content)


def _cannot_scrub(encoding: str) -> str:
    return f"the response is encoded with {encoding!r}, which the proxy cannot scrub"


def _is_small(response: http.Response) -> bool:
    """A body with a declared length of at most BUFFER_LIMIT: cheaper to take whole than to stream."""
    length = response.headers.get("content-length", "")
    return length.isdigit() and int(length) <= BUFFER_LIMIT and "transfer-encoding" not in response.headers


def _scrubber(flow: http.HTTPFlow) -> Scrubber | None:
    record = record_of(flow)
    if record is None or record.sandbox is None:
        return None
    return record.sandbox.secrets.response_scrubber


def _has_body(flow: http.HTTPFlow) -> bool:
    assert flow.response is not None
    status = flow.response.status_code
    return flow.request.method != "HEAD" and status >= 200 and status not in _NO_BODY_STATUS


def _drop_length(flow: http.HTTPFlow) -> None:
    """Let the body's length change: HTTP/2 and 3 need no length, HTTP/1.1 goes chunked, 1.0 ends at close."""
    assert flow.response is not None
    headers = flow.response.headers
    headers.pop("content-length", None)
    if flow.request.is_http2 or flow.request.is_http3 or flow.request.http_version == "HTTP/1.0":
        return
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        headers["transfer-encoding"] = "chunked"


class _DecodeThenScrub:
    """The ``stream`` callable for a compressed body: decode, then scrub (same "nothing yet" rule)."""

    __slots__ = ("_decoder", "_stream")

    def __init__(self, decoder: Decoder, stream: StreamScrubber) -> None:
        self._decoder = decoder
        self._stream = stream

    def __call__(self, chunk: bytes) -> bytes | tuple[()]:
        if chunk:
            return self._stream.feed(self._decoder.decompress(chunk)) or ()
        tail = self._stream.feed(self._decoder.flush())
        return (tail + self._stream.finish()) or ()
