"""An interactive terminal over the WebSocket: window size, Ctrl-C, exit status."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


def _open(daemon, sandbox_id: str, key: str, **query: object) -> ClientConnection:
    params = urlencode(query)
    url = f"ws://127.0.0.1:{daemon.port}/v1/sandboxes/{sandbox_id}/terminal?{params}"
    return connect(url, additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=30)


def _read_until(ws: ClientConnection, needle: str, timeout: float = 20) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{needle!r} never appeared; the terminal showed {seen[-500:]!r}")
        message = ws.recv(timeout=remaining)
        if isinstance(message, bytes):
            seen += message.decode("utf-8", "replace")
    return seen


def _exit_status(ws: ClientConnection, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(message, str):
            return json.loads(message)


def test_window_size_ctrl_c_and_exit(daemon, sandbox: dict) -> None:
    with _open(daemon, sandbox["id"], daemon.admin_key, rows=40, cols=100) as ws:
        ws.send(b"stty size\r")
        _read_until(ws, "40 100")
        ws.send(json.dumps({"type": "resize", "rows": 30, "cols": 90}))
        ws.send(b"stty size\r")
        _read_until(ws, "30 90")
        ws.send(b"sleep 300; echo slept\r")
        time.sleep(0.5)
        ws.send(b"\x03")
        ws.send(b"echo status=$?\r")
        output = _read_until(ws, "status=130")
        assert "\nslept" not in output.replace("\r", ""), "Ctrl-C must have stopped the sleep, not let it finish"
        ws.send(b"exit 3\r")
        assert _exit_status(ws) == {"type": "exit", "exit_code": 3, "signal": None}


def test_terminal_runs_as_the_sandbox_user_in_the_workspace(daemon, sandbox: dict) -> None:
    with _open(daemon, sandbox["id"], daemon.admin_key, command="id -u; pwd; tty") as ws:
        output = _read_until(ws, "/dev/pts/")
        assert "1000" in output and "/workspace" in output
        assert _exit_status(ws)["exit_code"] == 0


def test_refusals_close_with_the_status_and_reason(daemon, tenant_client: httpx.Client, sandbox: dict) -> None:
    other_key = tenant_client.headers["Authorization"].removeprefix("Bearer ")
    for key, code in [("not-a-key-at-all-but-long-enough-000000", 4401), (other_key, 4404)]:
        with _open(daemon, sandbox["id"], key) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code, closed.value
