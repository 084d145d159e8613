from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from egress_proxy.decoding import decoder_for

BODY = b"the quick brown fox " * 2000


def raw_deflate(data: bytes) -> bytes:
    """Deflate without the zlib wrapper, which some servers send as "deflate"."""
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(BODY)),
        ("x-gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", raw_deflate(BODY)),
        ("br", brotli.compress(BODY)),
        ("zstd", zstandard.ZstdCompressor().compress(BODY)),
    ],
)
def test_decoders_work_chunk_by_chunk(encoding: str, encoded: bytes) -> None:
    decoder = decoder_for(encoding)
    assert decoder is not None
    out = b"".join(decoder.decompress(encoded[i:i + 100]) for i in range(0, len(encoded), 100))
    assert out + decoder.flush() == BODY


def test_unknown_and_stacked_encodings_have_no_decoder() -> None:
    assert decoder_for("compress") is None
    assert decoder_for("gzip, br") is None
