"""The SSE decoder: the same events whatever way the bytes are cut into reads."""

from __future__ import annotations

import json

import pytest

from sandboxd.client._sse import ServerSentEvent, SSEDecoder

STREAM = (
    'event: stdout\ndata: {"data": "h\u00e9llo"}\n\n'
    ": a comment, ignored\n"
    "event: stderr\r\ndata: first line\r\ndata: second line\r\n\r\n"
    "id: 7\nretry: 10\ndata:no space after the colon\n\n"
    "event: exit\rdata: {}\r\r"
).encode()

EXPECTED = [
    ServerSentEvent("stdout", '{"data": "h\u00e9llo"}'),
    ServerSentEvent("stderr", "first line\nsecond line"),
    ServerSentEvent("message", "no space after the colon"),
    ServerSentEvent("exit", "{}"),
]


def _decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_whole_stream_in_one_read() -> None:
    assert _decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_any_single_split_gives_the_same_events(cut: int) -> None:
    # Cuts fall inside lines, between \r and \n, and inside the two-byte "é".
    assert _decode([STREAM[:cut], STREAM[cut:]]) == EXPECTED


def test_one_byte_at_a_time() -> None:
    assert _decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_an_event_is_only_dispatched_at_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: stdout\ndata: x\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent("stdout", "x")]


def test_a_blank_line_without_data_dispatches_nothing_and_resets_the_name() -> None:
    assert _decode([b"event: stdout\n\ndata: y\n\n"]) == [ServerSentEvent("message", "y")]


def test_unterminated_tail_is_not_an_event() -> None:
    assert _decode([b'event: exit\ndata: {"exit_code": 0}']) == []
    assert json.loads(_decode([b'data: {"a": 1}\n\n'])[0].data) == {"a": 1}
