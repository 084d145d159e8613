"""MCP clients, the official SDK's over Streamable HTTP, against the session's running sandboxd.

``mcp`` speaks for the admin key's tenant (which owns the shared ``sandbox`` fixture),
``mcp_b`` for the second tenant of ``tenant_client``. ``ok`` and ``fails`` call a tool and
check which way it went, so tests read as what they expect.

The client's task group must be left by the task that entered it, and pytest-asyncio
tears fixtures down in another task than it set them up; so a fixture's client lives in
a task of its own (``held``), which the test talks to through the client's streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.integration.conftest import DaemonProcess


@asynccontextmanager
async def connect(url: str, key: str | None, mode: str = "auto") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            yield client


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call ``tool``, insist that it succeeded, and return its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def fails(client: Client, tool: str, **arguments: Any) -> str:
    """Call ``tool``, insist that it came back as a tool error, and return the error's text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    assert len(result.content) == 1 and result.content[0].type == "text"
    return result.content[0].text


async def held(url: str, key: str) -> AsyncIterator[Client]:
    """A connected client, kept open by its own task until the generator is resumed."""
    connected: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def hold() -> None:
        async with connect(url, key) as client:
            connected.set_result(client)
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.wait([connected, holder], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if holder.done():
        await holder  # connecting failed: raise why
    if not connected.done():
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        raise TimeoutError(f"no MCP connection to {url} within 30 s")
    try:
        yield connected.result()
    finally:
        release.set()
        await holder


@pytest.fixture(scope="session")
def mcp_url(daemon: DaemonProcess) -> str:
    return f"{daemon.url}/mcp"


@pytest.fixture(scope="session")
def tenant_key(tenant_client: httpx.Client) -> str:
    return tenant_client.headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
async def mcp(mcp_url: str, daemon: DaemonProcess) -> AsyncIterator[Client]:
    async for client in held(mcp_url, daemon.admin_key):
        yield client


@pytest.fixture
async def mcp_b(mcp_url: str, tenant_key: str) -> AsyncIterator[Client]:
    async for client in held(mcp_url, tenant_key):
        yield client
