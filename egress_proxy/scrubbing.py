"""Replace a fixed set of byte strings, in whole messages or in a stream of chunks.

Used in both directions: placeholder -> value when a request goes out, and
value -> placeholder when a response comes back. Replacement goes longest
needle first with ``bytes.replace`` (C speed; the needles are a handful of
secrets, so a regex alternation would be slower).

The streaming form holds back the last ``longest - 1`` bytes of each chunk so
that a needle split across chunk boundaries is still found, and moves the cut
past any needle that straddles it. Memory per stream is one chunk plus that tail.
"""

from __future__ import annotations

from collections.abc import Mapping


class Scrubber:
    """Replaces each needle by its replacement; immutable and shared by all flows of a sandbox."""

    __slots__ = ("_pairs", "longest")

    def __init__(self, replacements: Mapping[bytes, bytes]) -> None:
        if any(not needle for needle in replacements):
            raise ValueError("needles must not be empty")
        self._pairs: tuple[tuple[bytes, bytes], ...] = tuple(
            sorted(replacements.items(), key=lambda pair: len(pair[0]), reverse=True)
        )
        self.longest = max((len(n) for n, _ in self._pairs), default=0)

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def scrub(self, data: bytes, found: set[bytes] | None = None) -> bytes:
        """Replace every needle; add the needles that occurred to ``found`` if given."""
        for needle, replacement in self._pairs:
            if needle in data:
                if found is not None:
                    found.add(needle)
                data = data.replace(needle, replacement)
        return data

    def contains_any(self, data: bytes) -> bool:
        return any(needle in data for needle, _ in self._pairs)

    def safe_cut(self, data: bytes, cut: int) -> int:
        """Move ``cut`` forward past every needle occurrence that starts before it and ends after it."""
        moved = True
        while moved:
            moved = False
            for needle, _ in self._pairs:
                start = data.find(needle, max(0, cut - len(needle) + 1), cut + len(needle) - 1)
                if start != -1 and start < cut < start + len(needle):
                    cut = start + len(needle)
                    moved = True
        return cut

    def stream(self) -> StreamScrubber:
        return StreamScrubber(self)


class StreamScrubber:
    """Scrubs one stream: ``feed`` each chunk, then ``finish``; counts the bytes it hands on.

    Called directly it is a mitmproxy ``stream`` callable (chunk in, ``b""`` for
    the end). It then answers "nothing yet" with an empty tuple, never with an
    empty bytes object: mitmproxy writes every bytes object it gets as a chunk,
    and an empty chunk in a chunked HTTP/1.1 body is its terminator.
    """

    __slots__ = ("_scrubber", "_carry", "bytes_out", "found")

    def __init__(self, scrubber: Scrubber) -> None:
        self._scrubber = scrubber
        self._carry = b""
        self.bytes_out = 0
        self.found: set[bytes] = set()
        """The needles seen so far in this stream."""

    def __call__(self, chunk: bytes) -> bytes | tuple[()]:
        return (self.feed(chunk) if chunk else self.finish()) or ()

    def feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk if self._carry else chunk
        cut = len(data) - (self._scrubber.longest - 1)
        if cut <= 0:
            self._carry = data
            return b""
        cut = self._scrubber.safe_cut(data, cut)
        self._carry = data[cut:]
        return self._count(self._scrubber.scrub(data[:cut], self.found))

    def finish(self) -> bytes:
        out, self._carry = self._scrubber.scrub(self._carry, self.found), b""
        return self._count(out)

    def _count(self, out: bytes) -> bytes:
        self.bytes_out += len(out)
        return out


class ByteCounter:
    """The ``stream`` callable for responses with nothing to scrub: passes chunks on and counts them."""

    __slots__ = ("bytes_out",)

    def __init__(self) -> None:
        self.bytes_out = 0

    def __call__(self, chunk: bytes) -> bytes:
        self.bytes_out += len(chunk)
        return chunk
