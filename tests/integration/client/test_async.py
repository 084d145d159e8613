"""The asyncio SDK against a real daemon: the same flows, awaited."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandboxd.client import AsyncClient, ExitEvent, OutputEvent
from sandboxd.errors import NotFound


async def test_async_lifecycle_exec_and_stream(aclient: AsyncClient) -> None:
    async with aclient.sandboxes.create(labels={"suite": "sdk-async"}) as sbx:
        assert (await sbx.exec("echo $((6 * 7))")).stdout == "42\n"
        events = [e async for e in sbx.exec_stream(["sh", "-c", "echo a; echo b >&2; exit 2"])]
        assert OutputEvent("stdout", b"a\n") in events and OutputEvent("stderr", b"b\n") in events
        assert isinstance(events[-1], ExitEvent) and events[-1].exit_code == 2
        proc = await sbx.processes.start("echo bg; exit 9")
        assert (await sbx.processes.wait(proc.id, timeout=10)).exit_code == 9
        assert (await sbx.processes.output(proc.id)).stdout == "bg\n"
    with pytest.raises(NotFound):
        await aclient.sandboxes.get(sbx.id)


async def test_async_files_and_directories(aclient: AsyncClient, tmp_path: Path) -> None:
    async with aclient.sandboxes.create() as sbx:
        await sbx.files.write("x/hello.txt", "hello")
        assert await sbx.files.read("x/hello.txt") == b"hello"
        assert [e.name for e in await sbx.files.list("x")] == ["hello.txt"]
        src = tmp_path / "src"
        (src / "deep" / "er").mkdir(parents=True)
        (src / "deep" / "er" / "blob").write_bytes(os.urandom(700_000))
        await sbx.files.upload_dir(src, "/workspace/tree")
        assert await sbx.files.download_dir("/workspace/tree", tmp_path / "dst") == []
        assert (tmp_path / "dst" / "deep" / "er" / "blob").read_bytes() == (src / "deep" / "er" / "blob").read_bytes()
        chunks = [c async for c in sbx.files.read_stream("tree/deep/er/blob")]
        assert sum(map(len, chunks)) == 700_000
