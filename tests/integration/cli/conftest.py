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


CLI = [sys.executable, "-m", "sandboxd"]


@pytest.fixture(scope="session")
def cli_env(daemon: DaemonProcess) -> dict[str, str]:
    return {**os.environ, "SANDBOXD_URL": daemon.url, "SANDBOXD_API_KEY": daemon.admin_key}


@pytest.fixture(scope="session")
def sandboxd(cli_env: dict[str, str]) -> Run:
    """``sandboxd("ls", "--json")``; ``key=`` overrides the admin key, ``input=`` feeds stdin."""

    def run(*args: str, key: str | None = None, input: str | None = None, timeout: float = 120) -> Any:
        env = {**cli_env, "SANDBOXD_API_KEY": key} if key else cli_env
        return subprocess.run(
            [*CLI, *args],
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
