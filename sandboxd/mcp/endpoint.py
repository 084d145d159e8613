"""The /mcp route: the same API keys as the HTTP API, in front of the MCP transport.

The key is checked here, per HTTP request, exactly as the API checks it (same
service, same 401 body), and the caller is put into the ASGI scope; tools read it
from the request the SDK hands them, so every call acts as the key that sent it.

The transport runs stateless with JSON responses: each POST is complete in itself,
so there is no MCP session to tie to a key, nothing kept in memory between calls, and
nothing lost when sandboxd restarts. The SDK's DNS-rebinding check (a guard for
servers without authentication) is off: every request here needs a bearer key a
rebinding web page does not have, and sandboxd is often reached under names the
check cannot know in advance (a compose service name, a proxy's host).
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Final

from fastapi import FastAPI
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from sandboxd.daemon import Daemon
from sandboxd.errors import SandboxdError
from sandboxd.mcp.server import build_server
from sandboxd.mcp.toolset import CALLER_SCOPE_KEY, Caller

__all__ = ["MCP_PATH", "McpEndpoint"]

MCP_PATH: Final = "/mcp"


class McpEndpoint:
    """An ASGI app for ``MCP_PATH``. ``mount`` adds it to the app; ``running`` goes in the app's lifespan."""

    def __init__(self) -> None:
        self.server = build_server()
        # streamable_http_app() is what creates the session manager; its Starlette wrapper is not
        # used: the route added by mount() hands requests to the manager, so the path is exactly /mcp.
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._manager = self.server.session_manager
        self._app: FastAPI | None = None
        # In stateless mode the transport logs every request's teardown at INFO; that is noise here.
        logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)

    def mount(self, app: FastAPI) -> None:
        self._app = app
        app.router.add_route(MCP_PATH, self, methods=["GET", "POST", "DELETE"], include_in_schema=False)

    def running(self) -> AbstractAsyncContextManager[None]:
        """The MCP transport's task group; enter it in the lifespan, after the daemon is built."""
        return self._manager.run()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._app is not None, "McpEndpoint.mount() was not called"
        daemon: Daemon = self._app.state.daemon
        try:
            principal = daemon.tenants.authenticate(Headers(scope=scope).get("authorization"))
        except SandboxdError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            await JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)(scope, receive, send)
            return
        scope = {**scope, CALLER_SCOPE_KEY: Caller(daemon, principal)}
        await self._manager.handle_request(scope, receive, send)
