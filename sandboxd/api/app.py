"""The HTTP application: routers, the error mapping and the body limit, around one Daemon."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sandboxd.api.activity import ActivityMiddleware
from sandboxd.api.errors import install_error_handlers
from sandboxd.api.limits import BodyLimitMiddleware
from sandboxd.api.routes import admin, audit, egress, exec, files, health, sandboxes, secrets, snapshots, terminal
from sandboxd.config import Settings
from sandboxd.daemon import Daemon
from sandboxd.mcp import McpEndpoint
from sandboxd.runtime.base import Runtime


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    on_started: Callable[[Daemon, dict[str, int]], None] | None = None,
) -> FastAPI:
    mcp = McpEndpoint()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        daemon = Daemon.build(settings, runtime)
        reconciled = await daemon.start()
        app.state.daemon = daemon
        if on_started is not None:
            on_started(daemon, reconciled)
        try:
            async with mcp.running():
                yield
        finally:
            await daemon.close()

    app = FastAPI(
        title="sandboxd",
        version="0.1.0",
        summary="Persistent, isolated sandboxes for AI agents.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        streamed_suffixes=files.STREAMED_SUFFIXES + snapshots.STREAMED_SUFFIXES,
        prefix_limits={"/mcp": settings.mcp_max_request_bytes},
    )
    app.add_middleware(ActivityMiddleware)
    for module in (health, sandboxes, exec, files, terminal, admin, audit, snapshots, egress, secrets):
        app.include_router(module.router)
    mcp.mount(app)
    return app
