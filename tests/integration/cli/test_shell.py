"""`sandboxd shell` on a real local terminal (a pty): size, Ctrl-C, exit status."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

from tests.integration.cli.conftest import CLI


def _spawn_on_terminal(args: list[str], env: dict[str, str], rows: int, cols: int):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        [*CLI, *args], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True
    )
    os.close(slave)
    return proc, master


def _read_until(master: int, needle: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{needle!r} never appeared; saw {seen[-400:]!r}"
        if select.select([master], [], [], remaining)[0]:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    return seen


def test_shell_sees_the_local_size_takes_ctrl_c_and_returns_the_status(cli_env, sandbox: dict) -> None:
    proc, master = _spawn_on_terminal(["shell", sandbox["id"]], cli_env, rows=33, cols=101)
    try:
        _read_until(master, b"$ ")  # the prompt: type only once the shell listens, as a person would
        os.write(master, b"stty size\r")
        _read_until(master, b"33 101")
        os.write(master, b"sleep 300\r")
        time.sleep(0.5)
        os.write(master, b"\x03")
        os.write(master, b"echo code=$?\r")
        _read_until(master, b"code=130")
        os.write(master, b"exit 5\r")
        assert proc.wait(30) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_shell_with_a_command_and_unknown_sandbox(cli_env, sandboxd) -> None:
    missing = sandboxd("shell", "sbx_aaaaaaaaaaaaaaaaaaaa", "-c", "true")
    assert missing.returncode == 3 and "no sandbox" in missing.stderr
