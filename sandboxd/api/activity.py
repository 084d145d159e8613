"""Counts the calls running inside each sandbox, so a sandbox is never idle while one runs.

An exec streaming for an hour, a large upload, a long-poll on a process: the idle
clock (``sandboxd.service.activity``) must see each of them as busy from the first
byte to the last, which only the HTTP layer sees whole. Any request under
``/v1/sandboxes/<id>/`` counts, except the lifecycle calls themselves.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

_SANDBOX_CALL = re.compile(r"^/v1/sandboxes/(sbx_[a-z2-7]{20})/(?!pause$|hibernate$|resume$|keepalive$|lifecycle$)")


class ActivityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _SANDBOX_CALL.match(scope["path"]) if scope["type"] in ("http", "websocket") else None
        daemon = getattr(scope["app"].state, "daemon", None) if match else None
        if daemon is None or match is None:
            await self.app(scope, receive, send)
            return
        activity = daemon.sandboxes.activity
        sandbox_id = match.group(1)
        activity.begin(sandbox_id)
        try:
            await self.app(scope, receive, send)
        finally:
            activity.end(sandbox_id)
