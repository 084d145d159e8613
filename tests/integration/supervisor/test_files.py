"""Files through the real supervisor: binary-safe, streamed both ways, atomic, with clear errors."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator

import pytest

from sandboxd.errors import (
    AlreadyExists,
    Conflict,
    InvalidRequest,
    IsADirectory,
    NotADirectory,
    NotFound,
    PermissionDenied,
)
from sandboxd.runtime.supervisor_client import SupervisorClient
from tests.integration.supervisor.conftest import RunningSupervisor

ALL_BYTES = bytes(range(256))


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def test_binary_round_trip_with_mode(client: SupervisorClient, supervisor: RunningSupervisor) -> None:
    data = ALL_BYTES * 300 + b"\r\n\0"
    info = await client.write_file("deep/er/blob.bin", data, mode=0o600)
    target = supervisor.root / "deep" / "er" / "blob.bin"
    assert (info.name, info.path, info.type, info.size, info.mode) == ("blob.bin", str(target), "file", len(data), 0o600)
    assert info.mode_octal == "0600"
    assert target.read_bytes() == data
    assert os.stat(target).st_mode & 0o7777 == 0o600
    assert await collect(client.read_file("deep/er/blob.bin")) == data
    assert await collect(client.read_file(str(target))) == data

    replaced = await client.write_file(str(target), b"")
    assert replaced.size == 0 and replaced.mode == 0o644
    assert await collect(client.read_file(str(target))) == b""


async def test_a_50_mb_file_streams_both_ways(client: SupervisorClient, supervisor: RunningSupervisor) -> None:
    size = 50 * 1024 * 1024
    sent = hashlib.sha256()

    async def produce() -> AsyncIterator[bytes]:
        # Distinct chunks, so a dropped or repeated one changes the digest.
        for i in range(size // (1 << 20)):
            chunk = hashlib.sha256(str(i).encode()).digest() * (1 << 15)
            sent.update(chunk)
            yield chunk

    info = await client.write_file("big.bin", produce())
    assert info.size == size

    on_disk = hashlib.sha256()
    with (supervisor.root / "big.bin").open("rb") as f:
        while block := f.read(1 << 20):
            on_disk.update(block)
    assert on_disk.hexdigest() == sent.hexdigest()

    received = hashlib.sha256()
    total = 0
    async for chunk in client.read_file("big.bin"):
        received.update(chunk)
        total += len(chunk)
    assert total == size
    assert received.hexdigest() == sent.hexdigest()
    # Neither direction held the file in the supervisor's memory.
    assert supervisor.peak_rss_kib() < 40 * 1024


async def test_a_failed_upload_leaves_neither_file_nor_temp(
    client: SupervisorClient, supervisor: RunningSupervisor
) -> None:
    (supervisor.root / "keep.txt").write_bytes(b"old")

    class Broken(Exception):
        pass

    async def produce() -> AsyncIterator[bytes]:
        yield b"x" * (1 << 20)
        raise Broken()

    with pytest.raises(Broken):
        await client.write_file("keep.txt", produce())
    deadline = time.monotonic() + 5
    while sorted(os.listdir(supervisor.root)) != ["keep.txt"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(os.listdir(supervisor.root)) == ["keep.txt"]
    assert (supervisor.root / "keep.txt").read_bytes() == b"old"


async def test_stat_and_list(client: SupervisorClient, supervisor: RunningSupervisor) -> None:
    root = supervisor.root
    (root / "d").mkdir()
    (root / "d" / "b.txt").write_bytes(b"12345")
    (root / "d" / "a").mkdir()
    (root / "d" / "link").symlink_to("b.txt")
    os.chmod(root / "d" / "b.txt", 0o640)

    entries = await client.list_dir("d")
    assert [(e.name, e.type, e.path) for e in entries] == [
        ("a", "dir", str(root / "d" / "a")),
        ("b.txt", "file", str(root / "d" / "b.txt")),
        ("link", "symlink", str(root / "d" / "link")),
    ]
    by_name = {e.name: e for e in entries}
    assert (by_name["b.txt"].size, by_name["b.txt"].mode) == (5, 0o640)
    assert by_name["link"].target == "b.txt"
    assert by_name["b.txt"].mtime == pytest.approx(os.stat(root / "d" / "b.txt").st_mtime)

    info = await client.stat("d")
    assert (info.name, info.type) == ("d", "dir")
    assert await client.list_dir("d/a") == []


async def test_mkdir_delete_and_move(client: SupervisorClient, supervisor: RunningSupervisor) -> None:
    root = supervisor.root
    made = await client.mkdir("x/y/z", parents=True, mode=0o700)
    assert made.type == "dir" and made.mode == 0o700
    assert (await client.mkdir("x/y/z", parents=True)).type == "dir"  # like mkdir -p
    with pytest.raises(AlreadyExists):
        await client.mkdir("x/y/z")
    with pytest.raises(NotFound):
        await client.mkdir("nope/child")

    await client.write_file("x/y/z/f", b"f")
    moved = await client.move("x/y/z/f", "x/g")
    assert moved.path == str(root / "x" / "g")
    assert (root / "x" / "g").read_bytes() == b"f" and not (root / "x/y/z/f").exists()

    await client.write_file("x/h", b"h")
    with pytest.raises(AlreadyExists):
        await client.move("x/g", "x/h")
    await client.move("x/g", "x/h", overwrite=True)
    assert (root / "x" / "h").read_bytes() == b"f"
    with pytest.raises(NotFound):
        await client.move("x/missing", "x/other")

    with pytest.raises(Conflict) as refused:
        await client.delete("x")
    assert type(refused.value) is Conflict
    assert "recursive" in refused.value.message
    await client.delete("x/h")
    assert not (root / "x" / "h").exists()
    await client.delete("x", recursive=True)
    assert not (root / "x").exists()
    with pytest.raises(NotFound):
        await client.delete("x")


async def test_errors_map_to_their_classes(client: SupervisorClient, supervisor: RunningSupervisor) -> None:
    (supervisor.root / "dir").mkdir()
    (supervisor.root / "file").write_bytes(b"x")
    with pytest.raises(NotFound):
        await collect(client.read_file("missing"))
    with pytest.raises(NotFound):
        await client.stat("missing")
    with pytest.raises(IsADirectory):
        await collect(client.read_file("dir"))
    with pytest.raises(IsADirectory):
        await client.write_file("dir", b"x")
    with pytest.raises(NotADirectory):
        await client.list_dir("file")
    with pytest.raises(NotADirectory):
        await client.write_file("file/child", b"x")
    with pytest.raises(NotFound):
        await client.write_file("no/parent", b"x", parents=False)
    with pytest.raises(InvalidRequest):
        await client.stat("a\0b")
    with pytest.raises(InvalidRequest):
        await client.write_file("a\0b", b"x")
    with pytest.raises(InvalidRequest):
        await client.stat("")
    os.mkfifo(supervisor.root / "fifo")
    with pytest.raises(InvalidRequest):
        await collect(client.read_file("fifo"))
    # Still one healthy connection after all that.
    assert (await client.health())["ok"] is True


# Only as the sandbox user: root is not refused by file permissions.
@pytest.mark.parametrize("supervisor", ["sandbox-user"], indirect=True)
async def test_permission_denied(client: SupervisorClient, supervisor: RunningSupervisor) -> None:
    assert supervisor.uid != 0
    locked = supervisor.root / "locked"
    locked.mkdir(mode=0o000)
    try:
        with pytest.raises(PermissionDenied):
            await client.list_dir("locked")
    finally:
        locked.chmod(0o700)


async def test_a_refused_large_upload_is_answered_not_dropped(
    client: SupervisorClient, supervisor: RunningSupervisor
) -> None:
    (supervisor.root / "dir").mkdir()

    async def produce() -> AsyncIterator[bytes]:
        for _ in range(16):
            yield b"y" * (1 << 20)

    with pytest.raises(IsADirectory):
        await client.write_file("dir", produce())
    with pytest.raises(IsADirectory):
        await client.write_file("dir", b"z" * (8 << 20))
    assert (await client.stat("dir")).type == "dir"
