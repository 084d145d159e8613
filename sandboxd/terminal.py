"""`sandboxd shell`: the local end of a sandbox terminal, meant to feel like ssh.

The local terminal goes into raw mode, so every key (Ctrl-C, Ctrl-D, arrows)
travels to the sandbox's pty unchanged and its line discipline decides what they
mean; window size changes follow via SIGWINCH. The exit status is the shell's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from sandboxd.errors import SandboxdError, error_from_code

_STATUS_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 409: "conflict", 422: "invalid_request"}


def terminal_url(base_url: str, sandbox_id: str, rows: int, cols: int, command: str | None) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = {"rows": rows, "cols": cols, **({"command": command} if command else {})}
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/v1/sandboxes/{sandbox_id}/terminal?{urlencode(query)}"


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _refusal(closed: ConnectionClosed) -> SandboxdError:
    frame = closed.rcvd
    if frame is not None and frame.code >= 4000:
        return error_from_code(_STATUS_CODES.get(frame.code - 4000, "internal"), frame.reason or "terminal refused")
    return SandboxdError("the terminal connection closed unexpectedly")


def run_shell(base_url: str, api_key: str, sandbox_id: str, command: str | None = None) -> int:
    """Attach the local terminal to a sandbox shell; returns the shell's exit status.

    Raises:
        SandboxdError: the session could not be opened (bad key, unknown sandbox, ...).
    """
    size = shutil.get_terminal_size()
    url = terminal_url(base_url, sandbox_id, size.lines, size.columns, command)
    ws = connect(url, additional_headers={"Authorization": f"Bearer {api_key}"}, open_timeout=60, max_size=None)
    stdin_fd, stdout = sys.stdin.fileno(), sys.stdout.buffer
    stop = threading.Event()

    def send_size(*_: object) -> None:
        s = shutil.get_terminal_size()
        try:
            ws.send(json.dumps({"type": "resize", "rows": s.lines, "cols": s.columns}))
        except ConnectionClosed:
            pass

    def forward_keys() -> None:
        while not stop.is_set():
            try:
                data = os.read(stdin_fd, 4096)
            except OSError:
                break
            if not data:
                break
            try:
                ws.send(data)
            except ConnectionClosed:
                break

    previous = signal.signal(signal.SIGWINCH, send_size) if os.isatty(stdin_fd) else None
    try:
        with raw_mode(stdin_fd), ws:
            threading.Thread(target=forward_keys, name="keys", daemon=True).start()
            return _show(ws, stdout)
    finally:
        stop.set()
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)


def _show(ws: ClientConnection, stdout: object) -> int:
    try:
        while True:
            message = ws.recv()
            if isinstance(message, bytes):
                stdout.write(message)  # type: ignore[attr-defined]
                stdout.flush()  # type: ignore[attr-defined]
                continue
            control = json.loads(message)
            if control.get("type") == "exit":
                if control.get("signal"):
                    return 128 + int(control["signal"])
                return int(control.get("exit_code") or 0)
    except ConnectionClosed as closed:
        raise _refusal(closed) from None
