"""Directory tar streams: well-formed, built chunk by chunk, and extracted without escaping the target."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from sandboxd.client._tar import CHUNK, IteratorReader, extract_tar, iter_tar


def _tree(root: Path) -> None:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("print(1)\n")
    (root / "empty").mkdir()
    (root / "big.bin").write_bytes(os.urandom(CHUNK * 3 + 17))
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("src/pkg/mod.py")


def test_archive_holds_the_tree_with_modes_and_links(tmp_path: Path) -> None:
    _tree(tmp_path / "in")
    data = b"".join(iter_tar(tmp_path / "in"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"src", "src/pkg", "src/pkg/mod.py", "empty", "big.bin", "run.sh", "link"}
        assert members["run.sh"].mode == 0o755
        assert members["link"].issym() and members["link"].linkname == "src/pkg/mod.py"
        assert tar.extractfile("big.bin").read() == (tmp_path / "in" / "big.bin").read_bytes()


def test_no_chunk_is_bigger_than_one_read(tmp_path: Path) -> None:
    _tree(tmp_path / "in")
    assert max(len(chunk) for chunk in iter_tar(tmp_path / "in")) <= CHUNK


def test_a_file_that_grows_while_read_keeps_the_archive_well_formed(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "log").write_bytes(b"a" * 1000)
    (root / "z").write_text("after")
    chunks = iter_tar(root)
    first = next(chunks)  # the header of "log", with size 1000
    (root / "log").write_bytes(b"b" * 5000)
    data = first + b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("log").read() == b"b" * 1000
        assert tar.extractfile("z").read() == b"after"


def test_round_trip_through_a_streamed_reader(tmp_path: Path) -> None:
    _tree(tmp_path / "in")
    skipped = extract_tar(IteratorReader(iter_tar(tmp_path / "in")), tmp_path / "out")
    assert skipped == []
    assert (tmp_path / "out" / "big.bin").read_bytes() == (tmp_path / "in" / "big.bin").read_bytes()
    assert (tmp_path / "out" / "link").readlink() == Path("src/pkg/mod.py")
    assert (tmp_path / "out" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out" / "empty").is_dir()


def _hostile_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, target in [
            ("ok.txt", tarfile.REGTYPE, ""),
            ("../escape.txt", tarfile.REGTYPE, ""),
            ("/abs.txt", tarfile.REGTYPE, ""),
            ("out-link", tarfile.SYMTYPE, "/etc/passwd"),
            ("up-link", tarfile.SYMTYPE, "../../x"),
            ("dev", tarfile.CHRTYPE, ""),
        ]:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            data = b"x" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_extraction_skips_whatever_would_escape(tmp_path: Path) -> None:
    dest = tmp_path / "deep" / "out"
    skipped = extract_tar(io.BytesIO(_hostile_tar()), dest)
    # A leading "/" is stripped, so "/abs.txt" lands inside the target like any relative name.
    assert sorted(os.listdir(dest)) == ["abs.txt", "ok.txt"]
    assert not (tmp_path / "deep" / "escape.txt").exists()
    assert {line.split(":")[0] for line in skipped} == {"../escape.txt", "out-link", "up-link", "dev"}
