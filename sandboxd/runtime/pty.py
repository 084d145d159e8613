"""A terminal session with a sandbox's supervisor, over its unix socket.

The supervisor answers ``POST /pty`` with 101 Switching Protocols and the
connection then carries small frames both ways (one type byte, a 4-byte length,
the payload), which is all an interactive shell needs: input, output, window
size, and how it ended. HTTP clients cannot hand over a raw connection, so this
speaks the few lines of HTTP it needs itself.
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandboxd.errors import SandboxUnavailable, error_from_code


@dataclass(frozen=True, slots=True)
class PtyExit:
    exit_code: int | None
    signal: int | None


class PtyChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def write(self, data: bytes) -> None:
        await self._send(b"d", data)

    async def resize(self, rows: int, cols: int) -> None:
        await self._send(b"r", struct.pack(">HH", rows, cols))

    async def read(self) -> bytes | PtyExit:
        """Terminal output, or how the session ended; SandboxUnavailable if the connection drops."""
        try:
            head = await self._reader.readexactly(5)
            payload = await self._reader.readexactly(struct.unpack(">I", head[1:])[0])
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise SandboxUnavailable("the terminal session ended without an exit status") from exc
        if head[:1] == b"x":
            status = json.loads(payload)
            return PtyExit(status.get("exit_code"), status.get("signal"))
        return payload

    async def close(self) -> None:
        try:
            await self._send(b"k", b"")
        except (ConnectionError, RuntimeError):
            pass
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def _send(self, kind: bytes, payload: bytes) -> None:
        self._writer.write(kind + struct.pack(">I", len(payload)) + payload)
        await self._writer.drain()


async def open_pty(socket_path: Path, request: dict[str, Any]) -> PtyChannel:
    """Start a terminal session; supervisor errors come back as ``sandboxd.errors`` classes."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
    except OSError as exc:
        raise SandboxUnavailable(f"the sandbox supervisor does not answer ({exc.strerror or exc})") from None
    body = json.dumps(request).encode()
    writer.write(
        b"POST /pty HTTP/1.1\r\nHost: supervisor\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    try:
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
        writer.close()
        raise SandboxUnavailable("the sandbox supervisor closed the terminal request") from exc
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    if status == 101:
        return PtyChannel(reader, writer)
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    raw = await reader.readexactly(int(headers.get("Content-Length", "0")))
    writer.close()
    try:
        error = json.loads(raw)
        raise error_from_code(error.get("error", "internal"), error.get("message", "terminal refused"))
    except ValueError:
        raise SandboxUnavailable(f"the sandbox supervisor refused the terminal (HTTP {status})") from None
