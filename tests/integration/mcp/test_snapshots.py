"""Snapshots, forks, rollback, hibernation and changes through MCP, as a model would use them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from mcp import Client

from tests.integration.mcp.conftest import fails, ok


@pytest.fixture
def cleanup(admin: httpx.Client) -> Iterator[dict[str, list[str]]]:
    """Sandboxes and snapshots a test made through MCP: removed through the API at the end."""
    made: dict[str, list[str]] = {"sandboxes": [], "snapshots": []}
    yield made
    for sid in made["sandboxes"]:
        admin.delete(f"/v1/sandboxes/{sid}")
    for snp in reversed(made["snapshots"]):
        admin.delete(f"/v1/snapshots/{snp}", params={"force": "true"})


async def run(mcp: Client, sid: str, command: str) -> str:
    result = await ok(mcp, "run_command", sandbox_id=sid, command=command)
    assert result["exit_code"] == 0, result
    return result["stdout"]


async def test_snapshot_review_changes_and_roll_back(
    mcp: Client, sandbox: dict, cleanup: dict[str, list[str]]
) -> None:
    sid = sandbox["id"]
    text = await fails(mcp, "show_changes", sandbox_id=sid)
    assert "snapshot_sandbox" in text

    await run(mcp, sid, "echo one > notes.txt")
    snap = await ok(mcp, "snapshot_sandbox", sandbox_id=sid, name="before the edit")
    cleanup["snapshots"].append(snap["id"])
    assert (snap["sandbox_id"], snap["name"]) == (sid, "before the edit")
    listed = await ok(mcp, "list_snapshots", sandbox_id=sid)
    assert [s["id"] for s in listed["snapshots"]] == [snap["id"]]

    await run(mcp, sid, "echo two > notes.txt; echo new > added.txt")
    changes = await ok(mcp, "show_changes", sandbox_id=sid, diff=True)
    by_path = {c["path"]: c for c in changes["changes"]}
    assert by_path["/workspace/notes.txt"]["change"] == "modified"
    assert "-one" in by_path["/workspace/notes.txt"]["diff"] and "+two" in by_path["/workspace/notes.txt"]["diff"]
    assert by_path["/workspace/added.txt"]["change"] == "added"
    assert changes["base"] == snap["id"] and changes["truncated"] is False

    restored = await ok(mcp, "restore_snapshot", sandbox_id=sid, snapshot_id=snap["id"])
    assert restored["id"] == sid and restored["state"] == "running"
    assert await run(mcp, sid, "cat notes.txt; ls") == "one\nnotes.txt\n"


async def test_fork_hibernate_and_wake_on_use(mcp: Client, sandbox: dict, cleanup: dict[str, list[str]]) -> None:
    sid = sandbox["id"]
    await run(mcp, sid, "echo shared > state.txt")
    snap = await ok(mcp, "snapshot_sandbox", sandbox_id=sid)
    cleanup["snapshots"].append(snap["id"])
    forks = await ok(mcp, "fork_snapshot", snapshot_id=snap["id"], count=2, labels={"attempt": "x"})
    cleanup["sandboxes"].extend(f["id"] for f in forks["sandboxes"])
    assert len(forks["sandboxes"]) == 2
    for fork in forks["sandboxes"]:
        assert fork["labels"] == {"attempt": "x"}
        assert await run(mcp, fork["id"], "cat state.txt") == "shared\n"

    text = await fails(mcp, "delete_snapshot", snapshot_id=snap["id"])
    assert "in use" in text and "delete_sandbox" in text

    slept = await ok(mcp, "hibernate_sandbox", sandbox_id=sid)
    assert slept["state"] == "hibernated"
    assert await run(mcp, sid, "cat state.txt") == "shared\n"  # any call wakes it

    for fork in forks["sandboxes"]:
        await ok(mcp, "delete_sandbox", sandbox_id=fork["id"])
    assert await ok(mcp, "delete_snapshot", snapshot_id=snap["id"]) == {"deleted": snap["id"]}
    text = await fails(mcp, "restore_snapshot", sandbox_id=sid, snapshot_id=snap["id"])
    assert "list_snapshots" in text


async def test_another_tenant_cannot_use_a_snapshot(
    mcp: Client, mcp_b: Client, sandbox: dict, cleanup: dict[str, list[str]]
) -> None:
    snap = await ok(mcp, "snapshot_sandbox", sandbox_id=sandbox["id"])
    cleanup["snapshots"].append(snap["id"])
    text = await fails(mcp_b, "fork_snapshot", snapshot_id=snap["id"])
    assert f"no snapshot {snap['id']}" in text and "list_snapshots" in text
    assert snap["id"] not in {s["id"] for s in (await ok(mcp_b, "list_snapshots"))["snapshots"]}
