"""The egress policy and log through MCP, and what a model is told when a command hits a refused host."""

from __future__ import annotations

import asyncio
import secrets
import time

from mcp import Client

from tests.integration.mcp.conftest import fails, ok


async def test_policy_read_add_and_replace(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    shown = await ok(mcp, "get_egress_policy", sandbox_id=sid)
    assert shown["sandbox_id"] == sid and shown["source"] in ("tenant", "default")

    added = await ok(mcp, "set_egress_policy", sandbox_id=sid, allow=["pypi.org:443"])
    assert added["source"] == "sandbox"
    assert {"action": "allow", "host": "pypi.org", "port": 443} in added["rules"]
    again = await ok(mcp, "set_egress_policy", sandbox_id=sid, allow=["files.pythonhosted.org"], deny=["evil.example"])
    assert again["rules"][: len(added["rules"])] == added["rules"]  # added to, not replaced
    assert {"action": "deny", "host": "evil.example"} in again["rules"]
    replaced = await ok(mcp, "set_egress_policy", sandbox_id=sid, allow=["example.org"], replace=True)
    assert replaced["rules"] == [{"action": "allow", "host": "example.org"}]

    text = await fails(mcp, "set_egress_policy", sandbox_id=sid, allow=["pypi.org:https"])
    assert "port" in text and "call the tool again" in text


async def test_a_refused_host_comes_with_advice_and_shows_in_the_log(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    host = f"blocked-{secrets.token_hex(4)}.example"
    await ok(mcp, "set_egress_policy", sandbox_id=sid, allow=["pypi.org"], replace=True)
    result = await ok(mcp, "run_command", sandbox_id=sid, command=f"curl -fsS http://{host}/data")
    assert result["exit_code"] != 0
    advice = result["egress_advice"]
    assert advice and f"Host {host} is not allowed" in advice and "ask a human" in advice

    deadline = time.monotonic() + 5
    while not (log := await ok(mcp, "show_egress_log", sandbox_id=sid, blocked=True, host=host))["records"]:
        assert time.monotonic() < deadline, "the refused request never reached the egress log"
        await asyncio.sleep(0.05)
    entry = log["records"][0]
    assert (entry["host"], entry["blocked"], entry["status"]) == (host, True, 403) and entry["reason"]

    # HTTPS through curl names no host in its output: the advice then comes from the log, or points to it.
    https = await ok(mcp, "run_command", sandbox_id=sid, command=f"curl -sS https://{host}/")
    assert https["exit_code"] != 0 and https["egress_advice"]
    assert host in https["egress_advice"] or "show_egress_log" in https["egress_advice"]

    plain = await ok(mcp, "run_command", sandbox_id=sid, command="exit 1")
    assert plain["egress_advice"] is None


async def test_another_tenant_sees_neither_policy_nor_log(mcp_b: Client, sandbox: dict) -> None:
    for tool in ("get_egress_policy", "show_egress_log"):
        text = await fails(mcp_b, tool, sandbox_id=sandbox["id"])
        assert "list_sandboxes" in text
    text = await fails(mcp_b, "set_egress_policy", sandbox_id=sandbox["id"], allow=["example.org"])
    assert "list_sandboxes" in text
