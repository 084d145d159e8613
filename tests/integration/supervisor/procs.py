"""Finding test processes in /proc by a token in their command line, and waiting for them to go."""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path


def sleep_token() -> str:
    """A `sleep` duration no other process on this machine is likely to use."""
    return f"{900 + secrets.randbelow(99)}.{secrets.randbelow(10**6):06d}"


def alive_with(token: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line contains ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


def wait_until_gone(token: str, timeout: float = 5.0) -> list[int]:
    """Poll until no process carries ``token``; what is still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while (alive := alive_with(token)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive


def kill_all_with(token: str) -> None:
    for pid in alive_with(token):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
