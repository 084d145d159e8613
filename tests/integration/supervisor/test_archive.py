"""Directories as tar streams through the real supervisor, and archives that try to escape."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sandboxd.errors import InvalidRequest, NotADirectory, NotFound
from sandboxd.runtime.supervisor_client import SupervisorClient
from tests.integration.supervisor.conftest import RunningSupervisor

Build = Callable[[tarfile.TarFile], object]


def make_tar(build: Build, compression: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
        build(tar)
    return buffer.getvalue()


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def add_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str | None, int]]:
    """Every entry under ``root``: kind, content or link target, permission bits."""
    found: dict[str, tuple[str, bytes | str | None, int]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path), 0)
        elif path.is_dir():
            found[rel] = ("dir", None, st.st_mode & 0o777)
        else:
            found[rel] = ("file", path.read_bytes(), st.st_mode & 0o777)
    return found


async def chunks_of(data: bytes, size: int = 10000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_download_then_upload_reproduces_the_tree(
    client: SupervisorClient, supervisor: RunningSupervisor
) -> None:
    src = supervisor.root / "src"
    (src / "nested" / "deeper").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "bytes.bin").write_bytes(bytes(range(256)) * 1000)
    (src / "nested" / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(src / "nested" / "script.sh", 0o755)
    (src / "nested" / "deeper" / "note.txt").write_text("deep")
    (src / "link").symlink_to("nested/script.sh")

    archive = b"".join([chunk async for chunk in client.download_archive("src")])
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = sorted(tar.getnames())
    assert names == [
        "bytes.bin",
        "empty",
        "link",
        "nested",
        "nested/deeper",
        "nested/deeper/note.txt",
        "nested/script.sh",
    ]

    extracted = await client.upload_archive("copy/here", chunks_of(archive))
    assert extracted == len(names)
    assert snapshot(supervisor.root / "copy" / "here") == snapshot(src)


async def test_upload_accepts_gzip_and_plain_bytes(client: SupervisorClient, supervisor: RunningSupervisor) -> None:
    archive = make_tar(lambda tar: add_file(tar, "a/b.txt", b"gz"), compression="gz")
    assert await client.upload_archive("dest", archive) == 1
    assert (supervisor.root / "dest" / "a" / "b.txt").read_bytes() == b"gz"


@pytest.mark.parametrize(
    ("build", "why"),
    [
        (lambda tar: add_file(tar, "../evil", b"x"), "parent"),
        (lambda tar: add_file(tar, "ok/../../evil", b"x"), "parent-inside"),
        (lambda tar: add_file(tar, "/tmp/evil-absolute", b"x"), "absolute"),
        (lambda tar: add_link(tar, "link", "../outside"), "symlink-out"),
        (lambda tar: add_link(tar, "link", "/etc/passwd"), "symlink-absolute"),
        (lambda tar: add_link(tar, "hard", "../outside", tarfile.LNKTYPE), "hardlink-out"),
        (lambda tar: (add_link(tar, "door", ".."), add_file(tar, "door/evil", b"x")), "through-a-link"),
    ],
)
async def test_members_that_escape_are_refused(
    client: SupervisorClient, supervisor: RunningSupervisor, build: Build, why: str
) -> None:
    dest = supervisor.root / "box"
    before = set(os.listdir(supervisor.root.parent))
    with pytest.raises(InvalidRequest):
        await client.upload_archive(str(dest), make_tar(build))
    assert not (supervisor.root / "evil").exists()
    assert not (supervisor.root / "outside").exists()
    assert set(os.listdir(supervisor.root.parent)) == before
    assert not Path("/tmp/evil-absolute").exists()
    assert (await client.health())["ok"] is True


async def test_devices_and_garbage_are_refused(client: SupervisorClient, supervisor: RunningSupervisor) -> None:
    def fifo(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("pipe")
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)

    with pytest.raises(InvalidRequest):
        await client.upload_archive("box", make_tar(fifo))
    assert not (supervisor.root / "box" / "pipe").exists()
    with pytest.raises(InvalidRequest):
        await client.upload_archive("box", b"this is not a tar archive" * 100)


async def test_download_needs_an_existing_directory(client: SupervisorClient, supervisor: RunningSupervisor) -> None:
    (supervisor.root / "file").write_bytes(b"x")
    with pytest.raises(NotADirectory):
        async for _ in client.download_archive("file"):
            pass
    with pytest.raises(NotFound):
        async for _ in client.download_archive("missing"):
            pass
