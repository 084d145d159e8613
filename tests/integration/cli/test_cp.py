"""`sandboxd cp` both ways, files and directories."""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.cli.conftest import Run


def test_file_round_trip_keeps_bytes_and_mode(sandboxd: Run, sandbox_id: str, tmp_path: Path) -> None:
    local = tmp_path / "tool.sh"
    local.write_bytes(b"#!/bin/sh\necho tool\n" + os.urandom(100_000))
    local.chmod(0o755)
    up = sandboxd("cp", str(local), f"{sandbox_id}:/workspace/bin/")
    assert up.returncode == 0, up.stderr
    assert sandboxd("exec", sandbox_id, "-c", "stat -c %a bin/tool.sh").stdout == "755\n"
    down = sandboxd("cp", f"{sandbox_id}:/workspace/bin/tool.sh", str(tmp_path / "back.sh"))
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "back.sh").read_bytes() == local.read_bytes()
    assert os.access(tmp_path / "back.sh", os.X_OK)


def test_directory_round_trip(sandboxd: Run, sandbox_id: str, tmp_path: Path) -> None:
    src = tmp_path / "proj"
    (src / "src").mkdir(parents=True)
    (src / "src" / "main.py").write_text("print('main')\n")
    (src / "blob").write_bytes(os.urandom(1_000_000))
    # Into an existing directory, the copy takes the source's name (as cp -r does).
    up = sandboxd("sandbox", "cp", str(src), f"{sandbox_id}:/workspace")
    assert up.returncode == 0, up.stderr
    assert sandboxd("exec", sandbox_id, "--", "python3", "proj/src/main.py").stdout == "main\n"

    out = tmp_path / "out"
    out.mkdir()
    down = sandboxd("cp", f"{sandbox_id}:/workspace/proj", str(out))
    assert down.returncode == 0, down.stderr
    assert (out / "proj" / "blob").read_bytes() == (src / "blob").read_bytes()
    assert (out / "proj" / "src" / "main.py").read_text() == "print('main')\n"


def test_copy_errors(sandboxd: Run, sandbox_id: str, tmp_path: Path) -> None:
    missing_local = sandboxd("cp", str(tmp_path / "nope"), f"{sandbox_id}:/workspace/x")
    assert missing_local.returncode == 3 and "nope" in missing_local.stderr
    missing_remote = sandboxd("cp", f"{sandbox_id}:/workspace/nope", str(tmp_path / "x"))
    assert missing_remote.returncode == 3
    denied = sandboxd("cp", __file__, f"{sandbox_id}:/etc/passwd")
    assert denied.returncode == 1 and denied.stderr.startswith("sandboxd: ")
    assert not (tmp_path / "x").exists()
