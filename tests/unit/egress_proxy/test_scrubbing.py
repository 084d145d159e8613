from __future__ import annotations

import random

import pytest

from egress_proxy.scrubbing import ByteCounter, Scrubber

SECRET = b"s3cr3t-VALUE-0123456789"
PLACEHOLDER = b"sandboxd-ph-aaaaaaaaaaaa"


def run_stream(scrubber: Scrubber, chunks: list[bytes]) -> bytes:
    stream = scrubber.stream()
    out = b"".join(stream.feed(chunk) for chunk in chunks) + stream.finish()
    assert stream.bytes_out == len(out)
    return out


def test_scrub_replaces_every_occurrence() -> None:
    scrubber = Scrubber({SECRET: PLACEHOLDER})
    assert scrubber.scrub(b"a" + SECRET + b"b" + SECRET) == b"a" + PLACEHOLDER + b"b" + PLACEHOLDER


def test_longest_needle_wins() -> None:
    scrubber = Scrubber({b"abcdef": b"<long>", b"abc": b"<short>"})
    assert scrubber.scrub(b"abcdef abc") == b"<long> <short>"


@pytest.mark.parametrize("split", range(1, len(SECRET)))
def test_value_split_across_two_chunks_is_caught(split: int) -> None:
    body = b"x" * 100 + SECRET + b"y" * 100
    cut = 100 + split
    assert run_stream(Scrubber({SECRET: PLACEHOLDER}), [body[:cut], body[cut:]]) == (
        b"x" * 100 + PLACEHOLDER + b"y" * 100
    )


def test_value_spread_over_one_byte_chunks_is_caught() -> None:
    body = b"head " + SECRET + b" middle " + SECRET + b" tail"
    out = run_stream(Scrubber({SECRET: PLACEHOLDER}), [bytes([b]) for b in body])
    assert out == b"head " + PLACEHOLDER + b" middle " + PLACEHOLDER + b" tail"


def test_random_chunking_matches_whole_body_scrub() -> None:
    rng = random.Random(7)
    needles = {SECRET: PLACEHOLDER, b"another-secret-xyz": b"PH2", b"a%2Fb-quoted": b"PH3"}
    scrubber = Scrubber(needles)
    parts = [rng.choice([SECRET, b"another-secret-xyz", b"a%2Fb-quoted", b"filler", b"s3cr3t", b"\n"]) for _ in range(400)]
    body = b"".join(parts)
    expected = scrubber.scrub(body)
    for _ in range(30):
        chunks, position = [], 0
        while position < len(body):
            size = rng.randint(1, 64)
            chunks.append(body[position:position + size])
            position += size
        assert run_stream(scrubber, chunks) == expected
    assert SECRET not in expected


def test_stream_holds_back_at_most_a_tail() -> None:
    stream = Scrubber({SECRET: PLACEHOLDER}).stream()
    out = stream.feed(b"z" * 1000)
    assert len(out) == 1000 - (len(SECRET) - 1)
    assert stream.finish() == b"z" * (len(SECRET) - 1)


def test_as_mitmproxy_callable_it_never_returns_an_empty_chunk() -> None:
    # An empty bytes chunk would end a chunked HTTP/1.1 body early.
    stream = Scrubber({SECRET: PLACEHOLDER}).stream()
    assert stream(b"ok") == ()
    assert stream(b"") == b"ok"
    assert Scrubber({SECRET: PLACEHOLDER}).stream()(b"") == ()


def test_empty_needles_are_refused() -> None:
    with pytest.raises(ValueError):
        Scrubber({b"": b"x"})


def test_byte_counter_passes_chunks_through() -> None:
    counter = ByteCounter()
    assert counter(b"abc") == b"abc"
    assert counter(b"") == b""
    assert counter.bytes_out == 3
