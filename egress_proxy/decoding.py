"""Incremental decoders for compressed response bodies.

A secret inside a gzip body is invisible to a byte scrubber, and the sandbox
would decompress it. The proxy asks upstreams for uncompressed responses when a
sandbox has secrets, and decodes (chunk by chunk, never the whole body) the
ones that come back compressed anyway. An encoding it cannot decode is not
passed on.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli
import zstandard


class Decoder(Protocol):
    def decompress(self, chunk: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Zlib:
    """gzip, or deflate with or without the zlib wrapper (servers send both as "deflate")."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._obj = zlib.decompressobj(wbits)
        self._started = False

    def decompress(self, chunk: bytes) -> bytes:
        if not self._started and self._wbits == zlib.MAX_WBITS:
            self._started = True
            try:
                return self._obj.decompress(chunk)
            except zlib.error:
                self._wbits = -zlib.MAX_WBITS
                self._obj = zlib.decompressobj(self._wbits)
        self._started = True
        return self._obj.decompress(chunk)

    def flush(self) -> bytes:
        return self._obj.flush()


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def decompress(self, chunk: bytes) -> bytes:
        return self._obj.process(chunk)

    def flush(self) -> bytes:
        return b""


class _Zstd:
    def __init__(self) -> None:
        self._obj = zstandard.ZstdDecompressor().decompressobj()

    def decompress(self, chunk: bytes) -> bytes:
        return self._obj.decompress(chunk)

    def flush(self) -> bytes:
        return b""


def decoder_for(content_encoding: str) -> Decoder | None:
    """A fresh decoder for a Content-Encoding value, or None if it is not one we decode."""
    encoding = content_encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _Zlib(zlib.MAX_WBITS)
    if encoding == "br":
        return _Brotli()
    if encoding == "zstd":
        return _Zstd()
    return None
