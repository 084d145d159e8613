"""Exec through the API: results, stdin, timeouts that kill a tree, streaming, background processes."""

from __future__ import annotations

import base64
import json
import time

import httpx


def test_exec_argv_and_shell(admin: httpx.Client, sandbox: dict, sh) -> None:
    sid = sandbox["id"]
    out = admin.post(f"/v1/sandboxes/{sid}/exec", json={"argv": ["python3", "-c", "import os; print(os.getcwd())"]})
    assert out.status_code == 200
    assert out.json()["stdout"] == "/workspace\n"
    result = sh(sid, "echo out; echo err >&2; exit 3")
    assert (result["exit_code"], result["stdout"], result["stderr"]) == (3, "out\n", "err\n")
    assert result["timed_out"] is False and result["duration_ms"] >= 0
    assert sh(sid, "pwd", cwd="/tmp")["stdout"] == "/tmp\n"
    assert sh(sid, "echo $A-$B", env={"A": "1", "B": "2"})["stdout"] == "1-2\n"


def test_exec_stdin_text_and_binary(admin: httpx.Client, sandbox: dict, sh) -> None:
    sid = sandbox["id"]
    assert sh(sid, "tr a-z A-Z", stdin="hello")["stdout"] == "HELLO"
    raw = bytes(range(256))
    result = sh(sid, "cat", stdin_b64=base64.b64encode(raw).decode(), encoding="base64")
    assert base64.b64decode(result["stdout"]) == raw


def test_output_is_capped_with_a_flag(sandbox: dict, sh) -> None:
    result = sh(sandbox["id"], "head -c 3000000 /dev/zero | tr '\\0' x", max_output_bytes=1000)
    assert result["stdout_truncated"] is True
    assert len(result["stdout"]) == 1000
    assert result["exit_code"] == 0


def test_timeout_kills_the_whole_process_tree(sandbox: dict, sh) -> None:
    sid = sandbox["id"]
    started = time.monotonic()
    result = sh(sid, "sleep 1000 & setsid sleep 1001 & (sleep 1002 &) ; sleep 1003", timeout_s=1)
    assert result["timed_out"] is True
    assert time.monotonic() - started < 10
    left = sh(sid, "ps -eo args | grep -c '^sleep 100[0-3]' || true")["stdout"].strip()
    assert left == "0", sh(sid, "ps -eo pid,ppid,pgid,args")["stdout"]


def test_stream_delivers_output_before_exit(admin: httpx.Client, sandbox: dict) -> None:
    events: list[tuple[str, dict, float]] = []
    started = time.monotonic()
    with admin.stream(
        "POST",
        f"/v1/sandboxes/{sandbox['id']}/exec/stream",
        json={"command": "echo one; sleep 1.5; echo two >&2; exit 4"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event:
                events.append((event, json.loads(line.removeprefix("data: ")), time.monotonic() - started))
    kinds = [e[0] for e in events]
    assert kinds == ["stdout", "stderr", "exit"]
    assert events[0][1]["data"] == "one\n" and events[1][1]["data"] == "two\n"
    assert events[2][1]["exit_code"] == 4
    assert events[0][2] < events[2][2] - 1.0, "the first line must arrive while the command still runs"


def test_background_process_read_stdin_and_kill(admin: httpx.Client, sandbox: dict) -> None:
    base = f"/v1/sandboxes/{sandbox['id']}/processes"
    proc = admin.post(base, json={"argv": ["python3", "-u", "-c", "import sys\nfor l in sys.stdin: print('got', l.strip())"]})
    assert proc.status_code == 201, proc.text
    pid = proc.json()["id"]
    assert admin.post(f"{base}/{pid}/stdin", content=b"alpha\n").status_code == 204
    deadline = time.monotonic() + 10
    output = {}
    while time.monotonic() < deadline:
        output = admin.get(f"{base}/{pid}/output").json()
        if "got alpha" in output["stdout"]:
            break
        time.sleep(0.05)
    assert "got alpha" in output["stdout"]
    assert pid in {p["id"] for p in admin.get(base).json()["processes"]}

    killed = admin.post(f"{base}/{pid}/signal", json={"signal": "KILL"})
    assert killed.status_code == 200, killed.text
    waited = admin.post(f"{base}/{pid}/wait", params={"timeout": 10}).json()
    assert waited["state"] != "running"


def test_background_process_wait_returns_exit_code(admin: httpx.Client, sandbox: dict) -> None:
    base = f"/v1/sandboxes/{sandbox['id']}/processes"
    pid = admin.post(base, json={"command": "echo done; exit 7"}).json()["id"]
    waited = admin.post(f"{base}/{pid}/wait", params={"timeout": 10}).json()
    assert waited["exit_code"] == 7
    assert admin.get(f"{base}/{pid}/output").json()["stdout"] == "done\n"
