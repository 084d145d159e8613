"""Directories as tar streams, for upload_dir and download_dir.

Uploads write the archive as it is read: a header, then the file's bytes in
chunks, then padding, so a directory of any size costs one chunk of memory.
Downloads extract with the standard library's "data" filter, which refuses
absolute names, ``..``, links that point outside the target, device files and
set-uid bits; a member it refuses is skipped and reported rather than failing
the whole copy (an absolute symlink in a venv is common and harmless to skip).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

CHUNK = 256 * 1024
_BLOCK = tarfile.BLOCKSIZE


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _entries(root: Path, prefix: str) -> Iterator[tuple[Path, str]]:
    with os.scandir(root) as scan:
        children = sorted(scan, key=lambda e: e.name)
    for child in children:
        arcname = f"{prefix}{child.name}"
        yield Path(child.path), arcname
        if child.is_dir(follow_symlinks=False):
            yield from _entries(Path(child.path), arcname + "/")


def iter_tar(root: str | os.PathLike[str]) -> Iterator[bytes]:
    """The contents of ``root`` (not ``root`` itself) as a complete tar stream, in chunks.

    Symlinks are stored as links, never followed; sockets, fifos and devices are
    left out. A file that changes size while it is read is cut or zero-padded to
    the size its header announced, so the archive stays well-formed.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    for path, arcname in _entries(root, ""):
        st = os.lstat(path)
        info = tarfile.TarInfo(arcname)
        info.mtime = int(st.st_mtime)
        info.mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            info.size = st.st_size
        else:
            continue
        yield _header(info)
        if info.isreg():
            yield from _file_data(path, info.size)
    yield b"\0" * (2 * _BLOCK)


def _file_data(path: Path, size: int) -> Iterator[bytes]:
    left = size
    with open(path, "rb") as f:
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    if left:
        yield b"\0" * left
    if size % _BLOCK:
        yield b"\0" * (_BLOCK - size % _BLOCK)


class IteratorReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks, so ``tarfile`` can read a response as it arrives."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def extract_tar(fileobj: io.RawIOBase | io.BufferedIOBase, dest: str | os.PathLike[str]) -> list[str]:
    """Extract a tar stream into ``dest`` (created if missing); returns what was skipped and why."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []

    def keep_safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, path)
        except tarfile.FilterError as exc:
            skipped.append(f"{member.name}: {exc}")
            return None

    with tarfile.open(fileobj=fileobj, mode="r|") as tar:
        tar.extractall(dest, filter=keep_safe)
    return skipped
