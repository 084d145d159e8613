"""Files through the sync SDK: binary round trips, streamed big files, directories both ways, errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sandboxd.client import Sandbox
from sandboxd.errors import Conflict, IsADirectory, NotFound, PermissionDenied


def test_read_write_stat_list_move_remove(sbx: Sandbox, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 8
    info = sbx.files.write("a/b/blob.bin", payload, mode=0o750)
    assert info.size == len(payload)
    assert sbx.files.read("/workspace/a/b/blob.bin") == payload
    stat = sbx.files.stat("a/b/blob.bin")
    assert (stat.type, stat.mode_octal) == ("file", "0750")
    sbx.files.mkdir("a/c")
    assert {(e.name, e.type) for e in sbx.files.list("a")} == {("b", "dir"), ("c", "dir")}
    sbx.files.move("a/b/blob.bin", "a/c/moved.bin")
    assert not sbx.files.exists("a/b/blob.bin") and sbx.files.exists("a/c/moved.bin")
    with pytest.raises(Conflict):
        sbx.files.remove("a")
    sbx.files.remove("a", recursive=True)
    assert not sbx.files.exists("a")


def test_big_file_streams_both_ways(sbx: Sandbox, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as f:
        for _ in range(20):
            f.write(os.urandom(1024 * 1024))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    progress: list[int] = []
    with source.open("rb") as f:
        sbx.files.write("big.bin", f, progress=progress.append)
    assert progress[-1] == 20 * 1024 * 1024
    assert sbx.exec("sha256sum big.bin").stdout.split()[0] == digest
    h = hashlib.sha256()
    for chunk in sbx.files.read_stream("big.bin"):
        h.update(chunk)
    assert h.hexdigest() == digest


def test_directories_round_trip(sbx: Sandbox, tmp_path: Path) -> None:
    src = tmp_path / "proj"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("print('hi')\n")
    (src / "data.bin").write_bytes(os.urandom(300_000))
    (src / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (src / "run.sh").chmod(0o755)
    (src / "link").symlink_to("pkg/mod.py")
    sbx.files.upload_dir(src, "/workspace/up")
    assert sbx.exec("./up/run.sh && python3 up/link").stdout == "ran\nhi\n"

    sbx.exec("ln -s /etc/passwd up/abs-link")
    skipped = sbx.files.download_dir("/workspace/up", tmp_path / "back")
    back = tmp_path / "back"
    assert (back / "data.bin").read_bytes() == (src / "data.bin").read_bytes()
    assert (back / "pkg" / "mod.py").read_text() == "print('hi')\n"
    assert os.access(back / "run.sh", os.X_OK)
    assert (back / "link").readlink() == Path("pkg/mod.py")
    assert not (back / "abs-link").exists() and [s.split(":")[0] for s in skipped] == ["abs-link"]


def test_file_errors(sbx: Sandbox) -> None:
    with pytest.raises(NotFound):
        sbx.files.read("nope.txt")
    with pytest.raises(IsADirectory):
        sbx.files.read("/workspace")
    with pytest.raises(PermissionDenied):
        sbx.files.write("/etc/passwd", b"x")
    with pytest.raises(NotFound):
        sbx.files.download_dir("/workspace/nope", "/tmp/never-created-by-this-test")
