"""What a model is offered: the tool list, with descriptions and input schemas, in both protocol eras."""

from __future__ import annotations

import pytest

from tests.integration.conftest import DaemonProcess
from tests.integration.mcp.conftest import connect

EXPECTED_TOOLS = {
    "create_sandbox",
    "list_sandboxes",
    "delete_sandbox",
    "run_command",
    "start_process",
    "read_process_output",
    "kill_process",
    "read_file",
    "write_file",
    "list_directory",
    "snapshot_sandbox",
    "list_snapshots",
    "fork_snapshot",
    "restore_snapshot",
    "hibernate_sandbox",
    "show_changes",
    "delete_snapshot",
    "get_egress_policy",
    "set_egress_policy",
    "show_egress_log",
}


# "auto" negotiates the newest protocol (stateless requests); "legacy" is the initialize
# handshake that most MCP clients in use today still speak.
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tool_list_names_descriptions_and_schemas(mcp_url: str, daemon: DaemonProcess, mode: str) -> None:
    async with connect(mcp_url, daemon.admin_key, mode=mode) as client:
        assert client.instructions and "run_command" in client.instructions
        tools = (await client.list_tools()).tools
    by_name = {t.name: t for t in tools}
    assert set(by_name) == EXPECTED_TOOLS
    for tool in tools:
        assert tool.description and len(tool.description) > 80, tool.name
        schema = tool.input_schema
        assert schema["type"] == "object"
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
        assert "ctx" not in schema.get("properties", {})
        assert tool.output_schema is not None, tool.name
        assert tool.annotations is not None, tool.name
    without_sandbox = {"create_sandbox", "list_sandboxes", "list_snapshots", "fork_snapshot", "delete_snapshot"}
    for name in EXPECTED_TOOLS - without_sandbox:
        assert "sandbox_id" in by_name[name].input_schema["required"], name
    for name in ("fork_snapshot", "delete_snapshot", "restore_snapshot"):
        assert "snapshot_id" in by_name[name].input_schema["required"], name
    assert by_name["list_sandboxes"].annotations.read_only_hint is True
    assert by_name["delete_sandbox"].annotations.destructive_hint is True
