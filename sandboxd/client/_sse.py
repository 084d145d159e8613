"""Server-Sent Events, decoded incrementally from whatever byte chunks the network delivers.

A read can end anywhere: inside a line, between ``\\r`` and ``\\n``, inside a UTF-8
character. The decoder keeps the unfinished tail and only ever decodes whole
lines, so none of those splits changes what comes out. It follows the parts of
the WHATWG event-stream format a JSON API needs: ``event``, multi-line ``data``,
comments; ``id`` and ``retry`` are read past (the SDK never reconnects a stream,
since a command cannot be resumed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\n|\r")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        # A line ended in \r: if the next byte is \n, it belongs to that same line end.
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events completed by this chunk, in order."""
        if self._after_cr and chunk:
            self._after_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        self._buffer += chunk
        events: list[ServerSentEvent] = []
        start = 0
        while (match := _LINE_END.search(self._buffer, start)) is not None:
            line = self._buffer[start : match.start()].decode("utf-8", "replace")
            start = match.end()
            if match.group() == b"\r" and start == len(self._buffer):
                self._after_cr = True
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = self._buffer[start:]
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(event=event, data="\n".join(data))
