"""Supervising the proxy process, with a stand-in that only listens where mitmdump would."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from sandboxd.egress.proxy import ProxyConfig, ProxySupervisor, mitmdump_command
from sandboxd.errors import RuntimeFailure

FAKE_MITMDUMP = f"""#!{sys.executable}
import socket, sys, time
args = sys.argv[1:]
if "--fail" in " ".join(args):
    print("cannot start: told to fail", flush=True)
    sys.exit(3)
host, port = args[args.index("--listen-host") + 1], int(args[args.index("--listen-port") + 1])
server = socket.create_server((host, port))
while True:
    connection, _ = server.accept()
    connection.close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(tmp_path: Path, **changes: object) -> ProxyConfig:
    fake = tmp_path / "mitmdump"
    fake.write_text(FAKE_MITMDUMP)
    fake.chmod(0o755)
    base = dict(
        mitmdump=fake, addon=tmp_path / "addon.py", listen_host="127.0.0.1", listen_port=free_port(),
        confdir=tmp_path, state_path=tmp_path / "state.json", state_key_path=tmp_path / "state.key",
        audit_path=tmp_path / "audit.jsonl",
    )
    base.update(changes)
    return ProxyConfig(**base)  # type: ignore[arg-type]


def supervisor(tmp_path: Path, cfg: ProxyConfig) -> ProxySupervisor:
    return ProxySupervisor(cfg, log_path=tmp_path / "proxy.log", pid_path=tmp_path / "proxy.pid",
                           ready_timeout_s=5, min_backoff_s=0.05, max_backoff_s=0.2)


def test_the_command_names_every_file_of_the_contract(tmp_path: Path) -> None:
    cfg = config(tmp_path, upstream_ca=tmp_path / "bundle.pem")
    command = " ".join(mitmdump_command(cfg))
    for expected in (f"--listen-host 127.0.0.1 --listen-port {cfg.listen_port}", f"confdir={tmp_path}",
                     f"egress_state={cfg.state_path}", f"egress_state_key={cfg.state_key_path}",
                     f"egress_audit={cfg.audit_path}", f"ssl_verify_upstream_trusted_ca={tmp_path / 'bundle.pem'}",
                     "flow_detail=0", f"-s {cfg.addon}"):
        assert expected in command
    assert "ssl_verify_upstream_trusted_ca" not in " ".join(mitmdump_command(config(tmp_path)))


async def test_started_listening_restarted_after_a_crash_and_stopped(tmp_path: Path) -> None:
    proxy = supervisor(tmp_path, config(tmp_path))
    await proxy.start()
    try:
        first = proxy.pid
        assert first is not None and int((tmp_path / "proxy.pid").read_text()) == first
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while proxy.pid in (None, first) or not await asyncio.to_thread(_accepts, proxy.config):
            assert time.monotonic() < deadline, "the proxy was not restarted"
            await asyncio.sleep(0.02)
        assert proxy.restarts == 1
    finally:
        await proxy.stop()
    assert proxy.pid is None and not (tmp_path / "proxy.pid").exists()


async def test_a_proxy_that_cannot_start_says_why(tmp_path: Path) -> None:
    proxy = supervisor(tmp_path, config(tmp_path, addon=tmp_path / "--fail"))
    with pytest.raises(RuntimeFailure, match="told to fail"):
        await proxy.start()


async def test_an_orphan_of_an_earlier_daemon_is_ended_first(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    orphan = await asyncio.create_subprocess_exec(*mitmdump_command(cfg), start_new_session=True)
    (tmp_path / "proxy.pid").write_text(f"{orphan.pid}\n")
    deadline = time.monotonic() + 5
    while not await asyncio.to_thread(_accepts, cfg):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    proxy = supervisor(tmp_path, cfg)
    await proxy.start()
    try:
        assert await asyncio.wait_for(orphan.wait(), 5) == -signal.SIGTERM
        assert proxy.pid != orphan.pid
    finally:
        await proxy.stop()


def _accepts(cfg: ProxyConfig) -> bool:
    try:
        socket.create_connection((cfg.listen_host, cfg.listen_port), timeout=0.2).close()
    except OSError:
        return False
    return True
