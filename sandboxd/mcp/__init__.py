"""sandboxd's MCP tool endpoint: the service layer's sandboxes, commands and files as MCP tools.

``McpEndpoint`` is what the HTTP app mounts; ``build_server`` gives the bare
``MCPServer`` (for listing tools, or serving them another way).
"""

from sandboxd.mcp.endpoint import MCP_PATH, McpEndpoint
from sandboxd.mcp.server import build_server

__all__ = ["MCP_PATH", "McpEndpoint", "build_server"]
