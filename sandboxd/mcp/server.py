"""The MCP server: sandboxd's tools, gathered into one ``MCPServer``.

Adding a feature to MCP is one more tool function in the module of its area, or one
more module whose ``tools`` is listed in ``TOOLSETS``.
"""

from __future__ import annotations

from typing import Final

from mcp.server.mcpserver import MCPServer

from sandboxd.mcp import command_tools, egress_tools, file_tools, sandbox_tools, snapshot_tools
from sandboxd.mcp.toolset import ToolSet

TOOLSETS: Final[tuple[ToolSet, ...]] = (
    sandbox_tools.tools,
    command_tools.tools,
    file_tools.tools,
    snapshot_tools.tools,
    egress_tools.tools,
)

INSTRUCTIONS: Final = """\
sandboxd gives you persistent Linux sandboxes (Debian, bash, Python 3) to run code in.
Typical use: list_sandboxes to find one you already have (or create_sandbox), then
run_command, write_file / read_file and list_directory in it; start_process for servers
and long jobs. Sandboxes keep files and processes between calls until delete_sandbox.
Before a risky change, snapshot_sandbox; restore_snapshot undoes it, show_changes reviews
it, fork_snapshot copies it. hibernate_sandbox parks an idle sandbox (it wakes on use).
Commands run as an unprivileged user without root; network access is limited to hosts
a human has allowed (get_egress_policy, show_egress_log). A failed call returns an error
text that says what to do next."""


def build_server(version: str = "0.1.0") -> MCPServer:
    server: MCPServer = MCPServer(
        "sandboxd",
        title="sandboxd",
        instructions=INSTRUCTIONS,
        version=version,
        warn_on_duplicate_tools=True,
    )
    for toolset in TOOLSETS:
        toolset.register(server)
    return server
