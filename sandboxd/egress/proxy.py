"""The local egress proxy: mitmdump with the ``egress_proxy`` addons, as a supervised child.

sandboxd starts it listening on the sandbox network's gateway address, restarts
it with backoff whenever it exits (sandboxes only see refused connections in the
meantime; the state file is on disk, so a restarted proxy knows everything at
once), and stops it on shutdown. Its pid is kept in a file, so a proxy orphaned
by a daemon that was killed outright is ended at the next start instead of
holding the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from sandboxd.errors import RuntimeFailure

_log = logging.getLogger(__name__)

_READY_POLL_S = 0.05
_STOP_TIMEOUT_S = 10.0
# A proxy that ran this long before exiting was healthy; its restart starts the backoff over.
_HEALTHY_RUN_S = 60.0


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    mitmdump: Path
    addon: Path
    listen_host: str
    listen_port: int
    confdir: Path
    state_path: Path
    state_key_path: Path
    audit_path: Path
    # Upstream trust; None keeps the addon's default, the system CA bundle.
    upstream_ca: Path | None = None


def mitmdump_command(config: ProxyConfig) -> list[str]:
    command = [
        str(config.mitmdump),
        "--mode", "regular",
        "--listen-host", config.listen_host,
        "--listen-port", str(config.listen_port),
        "--set", f"confdir={config.confdir}",
        "--set", f"egress_state={config.state_path}",
        "--set", f"egress_state_key={config.state_key_path}",
        "--set", f"egress_audit={config.audit_path}",
        # Warnings and errors only: request lines could carry query strings after injection.
        "--set", "termlog_verbosity=warn",
        "--set", "flow_detail=0",
    ]
    if config.upstream_ca is not None:
        command += ["--set", f"ssl_verify_upstream_trusted_ca={config.upstream_ca}"]
    return command + ["-s", str(config.addon)]


class ProxySupervisor:
    def __init__(
        self,
        config: ProxyConfig,
        *,
        log_path: Path,
        pid_path: Path,
        ready_timeout_s: float = 20.0,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.config = config
        self._log_path = log_path
        self._pid_path = pid_path
        self._ready_timeout_s = ready_timeout_s
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def start(self) -> None:
        """Start mitmdump and wait until it accepts connections; then keep it running.

        Raises:
            RuntimeFailure: it exited or did not listen in time (the message has its last log lines).
        """
        await asyncio.to_thread(self._end_orphan)
        self._stopping = False
        await self._spawn()
        try:
            await self._wait_listening()
        except BaseException:
            await self._terminate()
            raise
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="egress-proxy")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._terminate()

    async def _spawn(self) -> None:
        command = mitmdump_command(self.config)
        with open(self._log_path, "ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.config.confdir,
                # Its own session: a Ctrl-C meant for sandboxd reaches the proxy only through stop().
                start_new_session=True,
            )
        self._pid_path.write_text(f"{self._proc.pid}\n")

    async def _wait_listening(self) -> None:
        deadline = time.monotonic() + self._ready_timeout_s
        address = (self.config.listen_host, self.config.listen_port)
        while True:
            assert self._proc is not None
            if self._proc.returncode is not None:
                raise RuntimeFailure(f"the egress proxy exited with {self._proc.returncode} at start: {self._log_tail()}")
            if await asyncio.to_thread(_accepts, address):
                return
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"the egress proxy did not listen on {address[0]}:{address[1]} within "
                    f"{self._ready_timeout_s:g}s: {self._log_tail()}"
                )
            await asyncio.sleep(_READY_POLL_S)

    async def _supervise(self) -> None:
        backoff = self._min_backoff_s
        while not self._stopping:
            assert self._proc is not None
            started = time.monotonic()
            code = await self._proc.wait()
            if self._stopping:
                return
            if time.monotonic() - started > _HEALTHY_RUN_S:
                backoff = self._min_backoff_s
            _log.error("egress proxy exited with %s; restarting in %.1fs: %s", code, backoff, self._log_tail())
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)
            try:
                await self._spawn()
            except OSError as exc:
                _log.error("egress proxy could not be started again: %s", exc)
                continue
            self.restarts += 1

    async def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            self._pid_path.unlink(missing_ok=True)
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        self._pid_path.unlink(missing_ok=True)

    def _end_orphan(self) -> None:
        """End a proxy an earlier sandboxd on this data directory left running."""
        try:
            pid = int(self._pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\x00")
        except (FileNotFoundError, ValueError, ProcessLookupError):
            self._pid_path.unlink(missing_ok=True)
            return
        # Only a mitmdump serving this very state file is ours; a recycled pid is left alone.
        if not any(b"mitmdump" in part for part in cmdline[:2]) or (
            f"egress_state={self.config.state_path}".encode() not in cmdline
        ):
            self._pid_path.unlink(missing_ok=True)
            return
        _log.warning("ending the egress proxy (pid %d) left by an earlier sandboxd", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + _STOP_TIMEOUT_S
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        self._pid_path.unlink(missing_ok=True)

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self._log_path.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"


def _accepts(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=0.2).close()
    except OSError:
        return False
    return True
