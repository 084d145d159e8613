"""Upload bodies: bytes, text, open files or iterators, as chunks that can be counted and resent.

A body that can be produced again (bytes, a seekable file, a directory on disk)
comes with a ``replay`` so an idempotent PUT can be retried after a connection
failure; an iterator the caller handed over can be read only once, so it is not.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import IO

from sandboxd.client._tar import iter_tar

CHUNK = 256 * 1024

Data = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes] | Iterable[bytes]
AsyncData = Data | AsyncIterable[bytes]
Progress = Callable[[int], None]


def _split(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


def _read_file(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk


def _read_path(path: os.PathLike[str]) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from _read_file(f)


def _seekable(f: IO[bytes]) -> bool:
    try:
        return f.seekable()
    except (AttributeError, OSError, ValueError):
        return False


def sources(data: Data) -> Callable[[], Iterator[bytes]] | Iterator[bytes]:
    """A maker of fresh chunk iterators where the data allows it, else the one iterator there is."""
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, bytes | bytearray | memoryview):
        whole = bytes(data)
        return lambda: _split(whole)
    if isinstance(data, os.PathLike):
        # A Path is a local file to send (a str is always content, never a file name).
        path = data
        return lambda: _read_path(path)
    if hasattr(data, "read"):
        f: IO[bytes] = data  # type: ignore[assignment]
        if _seekable(f):
            start = f.tell()

            def rewind() -> Iterator[bytes]:
                f.seek(start)
                return _read_file(f)

            return rewind
        return _read_file(f)
    return iter(data)  # type: ignore[arg-type]


def directory(root: str | os.PathLike[str]) -> Callable[[], Iterator[bytes]]:
    return lambda: iter_tar(root)


def counted(chunks: Iterator[bytes], progress: Progress | None) -> Iterator[bytes]:
    """Pass chunks through, telling ``progress`` the running total of bytes."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if progress is not None:
            progress(total)
        yield chunk


async def acounted(chunks: AsyncIterable[bytes], progress: Progress | None) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if progress is not None:
            progress(total)
        yield chunk


async def in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A blocking chunk source (disk reads, tar building) stepped in a worker thread, off the event loop."""
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk


def _whole(data: object, progress: Progress | None) -> bytes | None:
    """In-memory data sent as is, so it goes with a Content-Length; None when it must be streamed."""
    if progress is None and isinstance(data, bytes | bytearray | memoryview | str):
        return data.encode() if isinstance(data, str) else bytes(data)
    return None


def sync_body(
    data: Data, progress: Progress | None
) -> tuple[bytes | Iterator[bytes], Callable[[], Iterator[bytes]] | None]:
    if (whole := _whole(data, progress)) is not None:
        return whole, None
    source = sources(data)
    if callable(source):
        return counted(source(), progress), lambda: counted(source(), progress)
    return counted(source, progress), None


def async_body(
    data: AsyncData, progress: Progress | None
) -> tuple[bytes | AsyncIterator[bytes], Callable[[], AsyncIterator[bytes]] | None]:
    if (whole := _whole(data, progress)) is not None:
        return whole, None
    if isinstance(data, AsyncIterable):
        return acounted(data, progress), None
    source = sources(data)
    if callable(source):
        return acounted(in_thread(source()), progress), lambda: acounted(in_thread(source()), progress)
    return acounted(in_thread(source), progress), None
