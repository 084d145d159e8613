"""`sandboxd create / ls / info / rm / exec` through a real process: JSON that parses, exit codes that hold."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time

from tests.integration.cli.conftest import CLI, Run
from tests.integration.conftest import DaemonProcess


def test_create_list_info_rm(sandboxd: Run) -> None:
    tag = secrets.token_hex(4)
    created = sandboxd("sandbox", "create", "--label", f"run={tag}", "--cpus", "0.5", "--memory", "300", "--env", "A=1")
    assert created.returncode == 0, created.stderr
    sid = created.stdout.strip()
    assert sid.startswith("sbx_")
    try:
        listed = sandboxd("ls", "--label", f"run={tag}", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [s["id"] for s in json.loads(listed.stdout)] == [sid]
        table = sandboxd("sandbox", "list", "--label", f"run={tag}").stdout.splitlines()
        assert table[0].split()[:2] == ["ID", "STATE"] and table[1].split()[:2] == [sid, "running"]
        info = json.loads(sandboxd("info", sid, "--json").stdout)
        assert (info["limits"]["cpus"], info["limits"]["memory_mb"], info["env"]) == (0.5, 300, {"A": "1"})
        fields = dict(line.split(None, 1) for line in sandboxd("info", sid).stdout.splitlines())
        assert (fields["id"], fields["memory"], fields["labels"]) == (sid, "300 MiB", f"run={tag}")
    finally:
        removed = sandboxd("rm", sid)
    assert removed.returncode == 0 and removed.stdout.strip() == sid
    assert json.loads(sandboxd("ls", "--label", f"run={tag}", "--json").stdout) == []


def test_exec_streams_output_and_returns_the_commands_exit_code(sandboxd: Run, sandbox_id: str) -> None:
    ran = sandboxd("exec", sandbox_id, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (ran.returncode, ran.stdout, ran.stderr) == (7, "out\n", "err\n")
    shell = sandboxd("sandbox", "exec", sandbox_id, "--cwd", "/tmp", "--env", "X=42", "-c", "echo $X $(pwd)")
    assert (shell.returncode, shell.stdout) == (0, "42 /tmp\n")
    fed = sandboxd("exec", "-i", sandbox_id, "--", "tr", "a-z", "A-Z", input="quiet\n")
    assert fed.stdout == "QUIET\n"


def test_exec_timeout_exits_124(sandboxd: Run, sandbox_id: str) -> None:
    slow = sandboxd("exec", "--timeout", "1", sandbox_id, "--", "sleep", "60")
    assert slow.returncode == 124
    assert "timed out" in slow.stderr


def test_ctrl_c_stops_the_command_in_the_sandbox(cli_env: dict[str, str], sandbox_id: str, sh) -> None:
    running = subprocess.Popen([*CLI, "exec", sandbox_id, "--", "sleep", "4321"], env=cli_env)
    try:
        deadline = time.monotonic() + 20
        while sh(sandbox_id, "pgrep -c -x sleep || true")["stdout"].strip() != "1":
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        running.send_signal(signal.SIGINT)
        assert running.wait(10) == 130
    finally:
        running.kill()
        running.wait()
    deadline = time.monotonic() + 10
    while sh(sandbox_id, "pgrep -c -x sleep || true")["stdout"].strip() != "0":
        assert time.monotonic() < deadline, "the command outlived the interrupted exec"
        time.sleep(0.05)


def test_missing_sandbox_exits_3_with_a_clear_message(sandboxd: Run) -> None:
    missing = "sbx_" + "a" * 20
    for args in (("info", missing), ("exec", missing, "--", "true"), ("rm", missing), ("cp", f"{missing}:/x", "/tmp")):
        result = sandboxd(*args)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.startswith("sandboxd: ") and missing in result.stderr
        assert "Traceback" not in result.stderr


def test_bad_key_exits_4(sandboxd: Run) -> None:
    result = sandboxd("ls", key="sbd-not-a-real-key-" + "z" * 30)
    assert result.returncode == 4
    assert result.stderr.startswith("sandboxd: ") and "key" in result.stderr


def test_unreachable_daemon_exits_1(sandboxd: Run, daemon: DaemonProcess) -> None:
    result = sandboxd("--url", "http://127.0.0.1:9", "ls")
    assert result.returncode == 1 and "cannot reach sandboxd" in result.stderr


def test_usage_errors_exit_2(sandboxd: Run, sandbox_id: str) -> None:
    assert sandboxd("exec", sandbox_id).returncode == 2
    assert sandboxd("create", "--cpus", "many").returncode == 2
    refused = sandboxd("create", "--memory", "-5")
    assert refused.returncode == 2 and "memory" in refused.stderr
