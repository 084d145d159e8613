"""Local files the SDK writes (snapshot exports): whole or not at all.

An export is written to a temporary file beside its target and renamed over it
only once the last byte is in, so a transfer cut off half-way never leaves a
truncated tar under the name a later import would trust.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

Target = str | os.PathLike[str] | IO[bytes]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file that becomes ``path`` when the block ends without an exception."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def opened(target: Target) -> Iterator[IO[bytes]]:
    """A path (str or PathLike) written atomically; a file object written as it is, and left open."""
    if isinstance(target, str | os.PathLike):
        with atomic_file(target) as f:
            yield f
    else:
        yield target
