"""The /mcp endpoint takes the API's keys, answers like the API without one, and keeps tenants apart."""

from __future__ import annotations

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.integration.mcp.conftest import connect, fails, ok

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def test_no_key_is_401_with_the_api_error_shape(mcp_url: str) -> None:
    response = httpx.post(mcp_url, json=INITIALIZE, headers=MCP_HEADERS)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["error"] == "unauthenticated"
    assert "Authorization" in body["message"]


UNKNOWN_KEY = "sbd_aaaaaaaaaaaaaaaaaaaa_" + "A" * 43


@pytest.mark.parametrize("header", [f"Bearer {UNKNOWN_KEY}", "Basic dXNlcjpwYXNz", "Bearer short"])
def test_bad_keys_are_401(mcp_url: str, header: str) -> None:
    response = httpx.post(mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


async def test_official_client_without_a_key_cannot_connect(mcp_url: str) -> None:
    with pytest.raises(ExceptionGroup) as caught:
        async with connect(mcp_url, None):
            pass
    assert caught.group_contains(MCPError)


async def test_a_revoked_key_stops_working_on_the_next_call(mcp_url: str, admin: httpx.Client) -> None:
    """Keys are checked on every HTTP request, not once per MCP connection."""
    default = next(t for t in admin.get("/v1/tenants").json()["tenants"] if t["name"] == "default")
    key = admin.post(f"/v1/tenants/{default['id']}/keys", json={"name": "short-lived"}).json()
    try:
        async with connect(mcp_url, key["key"]) as client:
            assert "sandboxes" in await ok(client, "list_sandboxes")
            assert admin.delete(f"/v1/keys/{key['id']}").status_code == 204
            with pytest.raises(MCPError):
                await client.call_tool("list_sandboxes", {})
    finally:
        admin.delete(f"/v1/keys/{key['id']}")


async def test_tenant_b_cannot_see_or_touch_tenant_a_sandbox(mcp: Client, mcp_b: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    assert sid in {s["id"] for s in (await ok(mcp, "list_sandboxes"))["sandboxes"]}
    assert sid not in {s["id"] for s in (await ok(mcp_b, "list_sandboxes"))["sandboxes"]}

    for tool, arguments in [
        ("run_command", {"command": "touch /workspace/from-b"}),
        ("write_file", {"path": "from-b", "content": "x"}),
        ("read_file", {"path": "/etc/hostname"}),
        ("list_directory", {}),
        ("start_process", {"command": "sleep 60"}),
        ("delete_sandbox", {}),
    ]:
        text = await fails(mcp_b, tool, sandbox_id=sid, **arguments)
        # Exactly what an id that never existed gets: nothing tells B that A's sandbox is there.
        assert f"no sandbox {sid}" in text and "list_sandboxes" in text, (tool, text)

    listing = await ok(mcp, "list_directory", sandbox_id=sid)
    assert "from-b" not in {e["name"] for e in listing["entries"]}
    assert (await ok(mcp, "run_command", sandbox_id=sid, command="echo still here"))["stdout"] == "still here\n"
