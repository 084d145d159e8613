"""A cap on request bodies, enforced while they arrive.

JSON bodies may not exceed ``max_request_bytes``; the streamed upload endpoints
(file content, archives) are exempt here and capped by the file service instead,
and the MCP endpoint, whose tool calls carry file contents inline, gets its own cap.
Checking the declared length first answers an honest client at once; counting
the bytes also stops a chunked body that declares nothing.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """An HTTPException, so the framework's body parsing re-raises it untouched and it answers 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is larger than this server's limit of {max_bytes} bytes")


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        streamed_suffixes: tuple[str, ...],
        prefix_limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed_suffixes = streamed_suffixes
        self.prefix_limits = prefix_limits or {}

    def _limit(self, path: str) -> int:
        for prefix, limit in self.prefix_limits.items():
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].endswith(self.streamed_suffixes):
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)

    async def _reject(self, send: Send, limit: int) -> None:
        body = json.dumps(
            {
                "error": "payload_too_large",
                "message": f"request body is larger than this server's limit of {limit} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
