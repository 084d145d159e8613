"""The asyncio twin against the same fake daemon: the same calls, awaited."""

from __future__ import annotations

import base64
import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sandboxd.client import AsyncClient, AsyncSandbox, ExitEvent, OutputEvent
from sandboxd.errors import NotFound, SandboxdError

from .conftest import SANDBOX_ID, FakeDaemon, sse

BASE = f"/v1/sandboxes/{SANDBOX_ID}"


@pytest.fixture
async def client(fake: FakeDaemon) -> AsyncIterator[AsyncClient]:
    async with AsyncClient("http://sbx.test", "key", transport=httpx.MockTransport(fake.handle_async)) as c:
        yield c


async def test_async_with_create_deletes_on_exit(client: AsyncClient, fake: FakeDaemon) -> None:
    async with client.sandboxes.create(labels={"a": "b"}) as sbx:
        assert sbx.id == SANDBOX_ID
    assert fake.calls() == [("POST", "/v1/sandboxes"), ("DELETE", BASE)]


async def test_awaited_create_is_a_plain_handle(client: AsyncClient, fake: FakeDaemon) -> None:
    sbx = await client.sandboxes.create()
    async with sbx:
        pass
    async with AsyncSandbox.create(client=client, keep=True):
        pass
    async with await AsyncSandbox.connect(SANDBOX_ID, client=client):
        pass
    assert fake.calls().count(("DELETE", BASE)) == 1


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_exec_stream_from_split_reads(client: AsyncClient, fake: FakeDaemon) -> None:
    body = sse(
        ("stdout", {"data": base64.b64encode("h\u00e9\n".encode()).decode()}),
        ("exit", {"exit_code": 0, "timed_out": False, "duration_ms": 3.0}),
    )
    fake.on("POST", f"{BASE}/exec/stream", lambda _r: httpx.Response(200, content=_chunks(body, 5)))
    sbx = await client.sandboxes.get(SANDBOX_ID)
    events = [event async for event in sbx.exec_stream("echo hé")]
    assert events[0] == OutputEvent("stdout", "h\u00e9\n".encode())
    assert isinstance(events[1], ExitEvent) and events[1].exit_code == 0


async def test_exec_and_not_found(client: AsyncClient, fake: FakeDaemon) -> None:
    fake.on(
        "POST",
        f"{BASE}/exec",
        {
            "exit_code": 1,
            "stdout": "",
            "stderr": "no\n",
            "stdout_truncated": False,
            "stderr_truncated": False,
            "duration_ms": 1.0,
            "timed_out": False,
        },
    )
    sbx = await client.sandboxes.get(SANDBOX_ID)
    assert (await sbx.exec(["false"])).stderr == "no\n"
    fake.on("GET", BASE, httpx.Response(404, json={"error": "not_found", "message": "no such sandbox"}))
    with pytest.raises(NotFound):
        await sbx.refresh()


async def test_get_retried_post_not(client: AsyncClient, fake: FakeDaemon, no_backoff: None) -> None:
    fake.refuse = 1
    await client.sandboxes.get(SANDBOX_ID)
    fake.refuse = 1
    with pytest.raises(SandboxdError, match="cannot reach"):
        await client.sandboxes.create()
    assert fake.calls() == [("GET", BASE), ("GET", BASE), ("POST", "/v1/sandboxes")]


async def test_files_write_async_iterable_and_dirs(client: AsyncClient, fake: FakeDaemon, tmp_path: Path) -> None:
    fake.on("PUT", f"{BASE}/files/content", {"name": "f", "type": "file", "size": 6})
    fake.on("PUT", f"{BASE}/archive", {"extracted": 1})
    sbx = await client.sandboxes.get(SANDBOX_ID)
    await sbx.files.write("f", _chunks(b"abcdef", 2))
    assert fake.bodies[-1] == b"abcdef"

    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "x.txt").write_text("x")
    await sbx.files.upload_dir(tmp_path / "up", "/workspace/up")
    with tarfile.open(fileobj=io.BytesIO(fake.bodies[-1])) as tar:
        assert tar.getnames() == ["x.txt"]

    fake.on("GET", f"{BASE}/archive", httpx.Response(200, content=fake.bodies[-1]))
    assert await sbx.files.download_dir("/workspace/up", tmp_path / "down") == []
    assert (tmp_path / "down" / "x.txt").read_text() == "x"
