"""An interactive terminal in a sandbox, over a WebSocket.

Binary messages carry terminal bytes both ways (what the user types; what the
terminal shows). Text messages carry JSON control: the client sends
``{"type": "resize", "rows": R, "cols": C}``; the server sends
``{"type": "exit", "exit_code": N, "signal": S}`` when the shell ends, then closes.
Errors close the socket with code 4000 + the HTTP status (4401, 4404, ...) and
the message as the reason, since a WebSocket has no response body to carry them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from sandboxd.daemon import Daemon
from sandboxd.errors import InvalidRequest, SandboxdError
from sandboxd.runtime.pty import PtyChannel, PtyExit

router = APIRouter(tags=["terminal"])


async def _pump_input(websocket: WebSocket, channel: PtyChannel) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes"):
            await channel.write(message["bytes"])
        elif message.get("text"):
            try:
                control = json.loads(message["text"])
                if control.get("type") == "resize":
                    await channel.resize(int(control["rows"]), int(control["cols"]))
            except (ValueError, KeyError, TypeError):
                continue  # a malformed control message is ignored, never fatal to the session


async def _pump_output(websocket: WebSocket, channel: PtyChannel) -> None:
    while True:
        item = await channel.read()
        if isinstance(item, PtyExit):
            await websocket.send_text(json.dumps({"type": "exit", "exit_code": item.exit_code, "signal": item.signal}))
            return
        await websocket.send_bytes(item)


@router.websocket("/v1/sandboxes/{sandbox_id}/terminal")
async def terminal(
    websocket: WebSocket,
    sandbox_id: str,
    rows: Annotated[int, Query(ge=1, le=1000)] = 24,
    cols: Annotated[int, Query(ge=1, le=1000)] = 80,
    command: str | None = None,
) -> None:
    daemon: Daemon = websocket.app.state.daemon
    await websocket.accept()
    try:
        principal = daemon.tenants.authenticate(websocket.headers.get("authorization"))
        if command is not None and "\x00" in command:
            raise InvalidRequest("command must not contain NUL bytes")
        channel = await daemon.exec.open_terminal(principal, sandbox_id, command=command, rows=rows, cols=cols)
    except SandboxdError as exc:
        await websocket.close(code=4000 + exc.status, reason=exc.message[:120])
        return
    inbound = asyncio.create_task(_pump_input(websocket, channel))
    outbound = asyncio.create_task(_pump_output(websocket, channel))
    try:
        done, _ = await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            with contextlib.suppress(WebSocketDisconnect, SandboxdError, ConnectionError):
                task.result()
    finally:
        for task in (inbound, outbound):
            task.cancel()
        await channel.close()
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close()
