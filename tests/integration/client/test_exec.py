"""Commands through the sync SDK: results, stdin, timeouts, streaming, background processes."""

from __future__ import annotations

import time

from sandboxd.client import ExitEvent, OutputEvent, Sandbox


def test_exec_results(sbx: Sandbox) -> None:
    result = sbx.exec("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (3, "out\n", "err\n", False)
    assert sbx.exec(["python3", "-c", "import os; print(os.getcwd())"]).stdout == "/workspace\n"
    assert sbx.exec("pwd", cwd="/tmp").stdout == "/tmp\n"
    assert sbx.exec("echo $A$B", env={"A": "x", "B": "y"}).stdout == "xy\n"
    assert sbx.exec("tr a-z A-Z", stdin="shout").stdout == "SHOUT"
    assert sbx.exec(["wc", "-c"], stdin=bytes(range(256))).stdout.strip() == "256"


def test_timeout_and_truncation(sbx: Sandbox) -> None:
    started = time.monotonic()
    slow = sbx.exec("sleep 60", timeout=1)
    assert slow.timed_out and time.monotonic() - started < 15
    big = sbx.exec("head -c 100000 /dev/zero | tr '\\0' x", max_output_bytes=1000)
    assert big.stdout_truncated and len(big.stdout) == 1000


def test_exec_stream_delivers_output_while_the_command_runs(sbx: Sandbox) -> None:
    seen: list[tuple[float, object]] = []
    started = time.monotonic()
    for event in sbx.exec_stream("echo one; sleep 1.5; printf '\\xff' >&2; exit 5"):
        seen.append((time.monotonic() - started, event))
    events = [e for _, e in seen]
    assert events[0] == OutputEvent("stdout", b"one\n")
    assert events[1] == OutputEvent("stderr", b"\xff")
    assert isinstance(events[-1], ExitEvent) and events[-1].exit_code == 5
    assert seen[0][0] < seen[-1][0] - 1.0, "the first line must arrive before the command ends"


def test_background_process(sbx: Sandbox) -> None:
    proc = sbx.processes.start(["python3", "-u", "-c", "import sys\nfor l in sys.stdin: print('got', l.strip())"])
    assert proc.state == "running" and proc.pid
    sbx.processes.write_stdin(proc.id, "alpha\n")
    deadline = time.monotonic() + 10
    output = sbx.processes.output(proc.id)
    while "got alpha" not in output.stdout and time.monotonic() < deadline:
        time.sleep(0.05)
        output = sbx.processes.output(proc.id)
    assert "got alpha" in output.stdout
    assert proc.id in {p.id for p in sbx.processes.list()}
    sbx.processes.write_stdin(proc.id, "beta\n", eof=True)
    ended = sbx.processes.wait(proc.id, timeout=10)
    assert ended.state == "exited" and ended.exit_code == 0
    rest = sbx.processes.output(proc.id, stdout_offset=output.stdout_offset)
    assert rest.stdout == "got beta\n"

    sleeper = sbx.processes.start("sleep 600", name="sleeper")
    assert sbx.processes.get(sleeper.id).name == "sleeper"
    sbx.processes.kill(sleeper.id)
    assert sbx.processes.wait(sleeper.id, timeout=10).state == "exited"
    sbx.processes.forget(sleeper.id)
    assert sleeper.id not in {p.id for p in sbx.processes.list()}
