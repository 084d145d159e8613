"""`sandboxd snapshot / restore / fork / pause / hibernate / wake / changes / lifecycle` through a real process."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.cli.conftest import CLI, Run


@pytest.fixture
def cleanup(admin: httpx.Client) -> Iterator[dict[str, list[str]]]:
    """Sandboxes and snapshots a test made through the CLI: removed through the API at the end."""
    made: dict[str, list[str]] = {"sandboxes": [], "snapshots": []}
    yield made
    for sid in made["sandboxes"]:
        admin.delete(f"/v1/sandboxes/{sid}")
    for snp in reversed(made["snapshots"]):
        admin.delete(f"/v1/snapshots/{snp}", params={"force": "true"})


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def test_snapshot_change_restore_and_list(sandboxd: Run, sandbox_id: str, cleanup: dict[str, list[str]]) -> None:
    ok(sandboxd("exec", sandbox_id, "-c", "echo one > /workspace/notes.txt"))
    snp = ok(sandboxd("snapshot", "create", sandbox_id, "--name", "before", "--label", "step=1")).strip()
    cleanup["snapshots"].append(snp)
    assert snp.startswith("snp_")

    listed = json.loads(ok(sandboxd("snapshot", "ls", "--sandbox", sandbox_id, "--json")))
    assert [(s["id"], s["name"], s["labels"]) for s in listed] == [(snp, "before", {"step": "1"})]
    table = ok(sandboxd("snapshot", "ls", "--label", "step=1")).splitlines()
    assert table[0].split()[:2] == ["ID", "NAME"] and table[1].split()[:2] == [snp, "before"]
    info = dict(line.split(None, 1) for line in ok(sandboxd("snapshot", "info", snp)).splitlines())
    assert (info["id"], info["state"], info["sandbox"]) == (snp, "ready", sandbox_id)

    ok(sandboxd("exec", sandbox_id, "-c", "echo two > /workspace/notes.txt; touch /workspace/new.txt"))
    shown = sandboxd("changes", sandbox_id, "--since", snp, "--path", "/workspace", "--diff")
    lines = ok(shown).splitlines()
    assert ["M", "file"] == lines[lines.index(next(line for line in lines if "notes.txt" in line))].split()[:2]
    assert any(line.split()[:1] == ["A"] and line.endswith("/workspace/new.txt") for line in lines)
    assert "-one" in lines and "+two" in lines
    as_json = json.loads(ok(sandboxd("changes", sandbox_id, "--path", "/workspace", "--json")))
    assert as_json["base"] == snp
    assert {c["path"]: c["change"] for c in as_json["changes"]} == {
        "/workspace/notes.txt": "modified",
        "/workspace/new.txt": "added",
    }

    assert ok(sandboxd("restore", sandbox_id, snp)).strip() == sandbox_id
    assert ok(sandboxd("exec", sandbox_id, "-c", "cat notes.txt; ls")) == "one\nnotes.txt\n"

    # Two snapshots compared with each other; a snapshot with no second one is a usage error.
    ok(sandboxd("exec", sandbox_id, "-c", "echo three > /workspace/notes.txt"))
    later = ok(sandboxd("snapshot", "create", sandbox_id)).strip()
    cleanup["snapshots"].append(later)
    between = json.loads(ok(sandboxd("changes", snp, later, "--path", "/workspace", "--json")))
    assert [c["path"] for c in between["changes"]] == ["/workspace/notes.txt"]
    assert sandboxd("changes", snp).returncode == 2


def test_fork_rm_and_exit_codes(sandboxd: Run, sandbox_id: str, cleanup: dict[str, list[str]]) -> None:
    ok(sandboxd("exec", sandbox_id, "-c", "echo shared > /workspace/state.txt"))
    snp = ok(sandboxd("snapshot", "create", sandbox_id)).strip()
    cleanup["snapshots"].append(snp)
    forks = ok(sandboxd("fork", snp, "-n", "2", "--label", "fork=cli")).split()
    cleanup["sandboxes"].extend(forks)
    assert len(forks) == 2 and all(f.startswith("sbx_") for f in forks)
    for fork in forks:
        assert ok(sandboxd("exec", fork, "--", "cat", "state.txt")) == "shared\n"

    # In use by the forks: refused (1) unless forced; a missing one is 3.
    refused = sandboxd("snapshot", "rm", snp)
    assert refused.returncode == 1 and "in use" in refused.stderr
    assert sandboxd("snapshot", "rm", "snp_" + "a" * 20).returncode == 3
    assert sandboxd("fork", snp, "-n", "0").returncode == 2

    # Forking a sandbox directly snapshots it first.
    direct = json.loads(ok(sandboxd("fork", sandbox_id, "--json")))
    cleanup["sandboxes"].extend(s["id"] for s in direct)
    cleanup["snapshots"].extend(
        s["id"] for s in json.loads(ok(sandboxd("snapshot", "ls", "--sandbox", sandbox_id, "--json"))) if s["id"] != snp
    )
    assert len(direct) == 1 and direct[0]["state"] == "running"


def test_pause_hibernate_wake_and_lifecycle(sandboxd: Run, sandbox_id: str) -> None:
    def state() -> str:
        return json.loads(ok(sandboxd("info", sandbox_id, "--json")))["state"]

    assert ok(sandboxd("pause", sandbox_id)).strip() == sandbox_id
    assert state() == "paused"
    ok(sandboxd("wake", sandbox_id))
    assert state() == "running"
    ok(sandboxd("hibernate", sandbox_id))
    assert state() == "hibernated"
    ok(sandboxd("resume", sandbox_id))
    assert state() == "running"
    assert sandboxd("hibernate", sandbox_id, "sbx_" + "b" * 20).returncode == 3

    set_ = json.loads(
        ok(sandboxd("lifecycle", sandbox_id, "--idle-timeout", "900", "--idle-action", "pause", "--json"))
    )
    assert (set_["idle_timeout_s"], set_["idle_action"]) == (900, "pause")
    shown = ok(sandboxd("lifecycle", sandbox_id)).splitlines()
    timeout_line = next(line for line in shown if line.startswith("idle timeout"))
    assert timeout_line.split()[2:] == ["900", "s", "(from", "sandbox)"]
    cleared = json.loads(ok(sandboxd("lifecycle", sandbox_id, "--idle-timeout", "none", "--json")))
    assert cleared["idle_timeout_s"] != 900 and cleared["idle_action"] == "pause"


def test_export_import_with_a_progress_bar_on_a_terminal(
    sandboxd: Run, cli_env: dict[str, str], sandbox_id: str, cleanup: dict[str, list[str]], tmp_path: Path
) -> None:
    ok(sandboxd("exec", sandbox_id, "-c", "echo carried > /workspace/marker.txt"))
    snp = ok(sandboxd("snapshot", "create", sandbox_id, "--name", "carry")).strip()
    cleanup["snapshots"].append(snp)
    tar = tmp_path / "snap.tar"

    # Piped: no progress output at all, so scripts get clean stderr.
    quiet = sandboxd("snapshot", "export", snp, str(tar))
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert tar.stat().st_size > 0

    # On a terminal: a bar on stderr, ending in "done".
    imported, bar = _run_on_pty([*CLI, "snapshot", "import", str(tar)], cli_env)
    assert "done" in bar and "100%" in bar and "[" in bar
    new = imported.strip().splitlines()[-1]
    cleanup["snapshots"].append(new)
    assert new.startswith("snp_") and new != snp
    forks = ok(sandboxd("fork", new)).split()
    cleanup["sandboxes"].extend(forks)
    assert ok(sandboxd("exec", forks[0], "--", "cat", "marker.txt")) == "carried\n"

    assert sandboxd("snapshot", "import", str(tmp_path / "missing.tar")).returncode == 3


def _run_on_pty(argv: list[str], env: dict[str, str]) -> tuple[str, str]:
    """Run with stderr on a pseudo-terminal (stdout piped); returns (stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        out, _ = proc.communicate(timeout=300)
    finally:
        os.close(master)
    assert proc.returncode == 0, shown
    return out.decode(), shown.decode(errors="replace")
