"""Run `sandboxd ...` as a child process against the session's daemon, as a script would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import DaemonProcess

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def sandboxd(daemon: DaemonProcess) -> Run:
    """``sandboxd("ls", "--json")``; ``key=`` overrides the admin key, ``input=`` feeds stdin."""

    def run(*args: str, key: str | None = None, input: str | None = None, timeout: float = 120) -> Any:
        env = {**os.environ, "SANDBOXD_URL": daemon.url, "SANDBOXD_API_KEY": key or daemon.admin_key}
        return subprocess.run(
            [sys.executable, "-m", "sandboxd", *args],
            env=env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def sandbox_id(sandboxd: Run, admin: httpx.Client) -> Iterator[str]:
    """A sandbox made by `sandboxd create`; removed through the API whatever the test did."""
    created = sandboxd("create", "--label", "suite=cli", "--json")
    assert created.returncode == 0, created.stderr
    sid = json.loads(created.stdout)["id"]
    yield sid
    admin.delete(f"/v1/sandboxes/{sid}")
