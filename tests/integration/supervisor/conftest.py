"""A real supervisor, run as a subprocess on a temporary socket and root, driven by the real client.

Each test gets its own supervisor (starting one costs ~60 ms), so no test can see
another's files or processes, and stopping it takes down whatever a test left running.

Every test runs twice where it can: once with this interpreter as the current user,
and once as it runs in a sandbox, as uid 1000 with the system's python3 (on Debian
bookworm a 3.11 without tarfile's extraction filters, so the supervisor's own
checks stand alone). The second needs root to switch user, and is skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandboxd.runtime.supervisor_client import SupervisorClient
from sandboxd.supervisor import SUPERVISOR_PATH

SANDBOX_UID = 1000
SYSTEM_PYTHON = Path("/usr/bin/python3")


@dataclass
class RunningSupervisor:
    socket: Path
    root: Path
    log: Path
    proc: subprocess.Popen[bytes]
    uid: int

    def peak_rss_kib(self) -> int:
        """The supervisor's high-water mark of resident memory, from /proc."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc status")


def _answers(sock_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(sock_path))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@pytest.fixture(params=["current-user", "sandbox-user"])
def supervisor(request: pytest.FixtureRequest) -> Iterator[RunningSupervisor]:
    as_sandbox_user = request.param == "sandbox-user"
    if as_sandbox_user and (os.geteuid() != 0 or not SYSTEM_PYTHON.exists()):
        pytest.skip("running the supervisor as the sandbox user needs root and /usr/bin/python3")
    # Unix socket paths are limited to 108 bytes, too short for pytest's tmp_path.
    base = Path(tempfile.mkdtemp(prefix="sbx-sup-"))
    root = base / "workspace"
    root.mkdir()
    (base / "run").mkdir()
    sock = base / "run" / "sock"
    log = base / "supervisor.log"
    python, uid = sys.executable, os.geteuid()
    env = {**os.environ, "SUPERVISOR_TEST_MARK": "1"}
    if as_sandbox_user:
        python, uid = str(SYSTEM_PYTHON), SANDBOX_UID
        # What a sandbox's supervisor starts with: the image's environment, not ours.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8", "SUPERVISOR_TEST_MARK": "1"}
        for path in (base, root, base / "run"):
            os.chown(path, SANDBOX_UID, SANDBOX_UID)
        os.chmod(base, 0o755)
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [python, str(SUPERVISOR_PATH), "--socket", str(sock), "--root-cwd", str(root)],
            stdout=log_file,
            stderr=log_file,
            env=env,
            user=uid if as_sandbox_user else None,
            group=uid if as_sandbox_user else None,
            extra_groups=[] if as_sandbox_user else None,
        )
    running = RunningSupervisor(socket=sock, root=root, log=log, proc=proc, uid=uid)
    try:
        deadline = time.monotonic() + 10
        while not _answers(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"supervisor did not start: {log.read_text()}")
            time.sleep(0.01)
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def client(supervisor: RunningSupervisor) -> AsyncIterator[SupervisorClient]:
    agent = SupervisorClient(supervisor.socket)
    try:
        yield agent
    finally:
        await agent.aclose()
