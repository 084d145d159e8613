"""Commands through MCP: results, limits, background processes, and a sandbox's whole life."""

from __future__ import annotations

import time

import httpx
from mcp import Client

from tests.integration.mcp.conftest import fails, ok


async def test_run_command_returns_exit_code_and_both_streams(mcp: Client, sandbox: dict) -> None:
    result = await ok(mcp, "run_command", sandbox_id=sandbox["id"], command="echo out; echo err >&2; exit 3")
    assert (result["exit_code"], result["stdout"], result["stderr"]) == (3, "out\n", "err\n")
    assert result["stdout_truncated"] is False and result["timed_out"] is False


async def test_run_command_with_argv_cwd_env_and_stdin(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    assert (await ok(mcp, "run_command", sandbox_id=sid, argv=["pwd"], cwd="/tmp"))["stdout"] == "/tmp\n"
    assert (await ok(mcp, "run_command", sandbox_id=sid, command="echo $A", env={"A": "1"}))["stdout"] == "1\n"
    assert (await ok(mcp, "run_command", sandbox_id=sid, command="tr a-z A-Z", stdin="abc"))["stdout"] == "ABC"


async def test_output_is_capped_and_flagged(mcp: Client, sandbox: dict) -> None:
    result = await ok(mcp, "run_command", sandbox_id=sandbox["id"], command="seq 1 100000", max_output_bytes=1000)
    assert result["stdout_truncated"] is True
    assert len(result["stdout"]) == 1000
    default = await ok(mcp, "run_command", sandbox_id=sandbox["id"], command="head -c 200000 /dev/zero | tr '\\0' x")
    assert default["stdout_truncated"] is True and len(default["stdout"]) == 32 * 1024


async def test_timeout_is_reported_not_raised(mcp: Client, sandbox: dict) -> None:
    started = time.monotonic()
    result = await ok(mcp, "run_command", sandbox_id=sandbox["id"], command="sleep 30", timeout_s=1)
    assert result["timed_out"] is True and result["exit_code"] is None
    assert time.monotonic() - started < 10


async def test_both_command_and_argv_is_an_actionable_error(mcp: Client, sandbox: dict) -> None:
    text = await fails(mcp, "run_command", sandbox_id=sandbox["id"], command="ls", argv=["ls"])
    assert "exactly one of 'argv'" in text and "call the tool again" in text
    text = await fails(mcp, "run_command", sandbox_id=sandbox["id"])
    assert "exactly one of 'argv'" in text


async def test_background_process_read_and_kill(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    proc = await ok(mcp, "start_process", sandbox_id=sid, command="echo ready; exec sleep 300", name="sleeper")
    assert proc["state"] == "running" and proc["name"] == "sleeper"
    deadline = time.monotonic() + 10
    out = await ok(mcp, "read_process_output", sandbox_id=sid, process_id=proc["id"])
    while out["stdout"] != "ready\n" and time.monotonic() < deadline:
        out = await ok(mcp, "read_process_output", sandbox_id=sid, process_id=proc["id"], wait_s=0.2)
    assert out["stdout"] == "ready\n" and out["state"] == "running"
    again = await ok(mcp, "read_process_output", sandbox_id=sid, process_id=proc["id"],
                     stdout_offset=out["next_stdout_offset"])
    assert again["stdout"] == ""

    killed = await ok(mcp, "kill_process", sandbox_id=sid, process_id=proc["id"], signal="KILL")
    final = await ok(mcp, "read_process_output", sandbox_id=sid, process_id=proc["id"], wait_s=10)
    assert final["state"] == "exited", (killed, final)
    # Stopping what has already stopped is not an error: the model gets the process as it ended.
    assert (await ok(mcp, "kill_process", sandbox_id=sid, process_id=proc["id"]))["state"] == "exited"


async def test_process_output_pages_by_max_bytes(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    proc = await ok(mcp, "start_process", sandbox_id=sid, command="seq 1 1000")
    first = await ok(mcp, "read_process_output", sandbox_id=sid, process_id=proc["id"], wait_s=10, max_bytes=100)
    assert first["state"] == "exited" and first["more_available"] is True
    assert len(first["stdout"]) == 100 and first["next_stdout_offset"] == 100
    rest = await ok(mcp, "read_process_output", sandbox_id=sid, process_id=proc["id"],
                    stdout_offset=first["next_stdout_offset"], max_bytes=1024 * 1024)
    assert first["stdout"] + rest["stdout"] == "".join(f"{i}\n" for i in range(1, 1001))
    assert rest["more_available"] is False


async def test_unknown_process_says_where_ids_come_from(mcp: Client, sandbox: dict) -> None:
    text = await fails(mcp, "read_process_output", sandbox_id=sandbox["id"], process_id="p-000000000000")
    assert "start_process" in text


async def test_sandbox_lifecycle_through_mcp(mcp: Client, admin: httpx.Client) -> None:
    created = await ok(mcp, "create_sandbox", labels={"suite": "mcp"}, env={"GREETING": "hello"})
    sid = created["id"]
    try:
        assert created["state"] == "running" and created["labels"] == {"suite": "mcp"}
        listed = await ok(mcp, "list_sandboxes", labels={"suite": "mcp"})
        assert [s["id"] for s in listed["sandboxes"]] == [sid]
        assert (await ok(mcp, "run_command", sandbox_id=sid, command="echo $GREETING"))["stdout"] == "hello\n"
        assert (await ok(mcp, "delete_sandbox", sandbox_id=sid)) == {"deleted": sid}
        assert admin.get(f"/v1/sandboxes/{sid}").status_code == 404
        text = await fails(mcp, "run_command", sandbox_id=sid, command="true")
        assert "list_sandboxes" in text
    finally:
        admin.delete(f"/v1/sandboxes/{sid}")
