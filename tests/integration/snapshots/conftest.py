"""Fixtures for snapshots, suspension, lifecycle and portability, against the real engine.

Besides the session daemon, some tests need a daemon of their own (to kill it, or
to import into an empty data directory): ``spawn`` starts one and, afterwards,
removes every container and image it made, whatever happened.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.integration.conftest import DaemonProcess, remove_owned_images, running_daemon

IMAGE_OWNER = "org.sandboxd.image-owner"


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def tiny_wheel(name: str = "tinypkg", version: str = "1.0") -> tuple[str, bytes]:
    """A minimal pure-Python wheel, built here: the sandboxes have no network to fetch one."""
    files = {
        f"{name}/__init__.py": f'GREETING = "hello from {name} {version}"\n'.encode(),
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record_lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record_lines.append(f"{path},sha256={digest},{len(data)}")
    record_lines.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


class Api:
    """Small helpers over an httpx client, so tests read as what they check."""

    def __init__(self, client: httpx.Client) -> None:
        self.c = client

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def create(self, **body: Any) -> dict:
        return self.ok(self.c.post("/v1/sandboxes", json=body), 201)

    def sh(self, sandbox_id: str, command: str) -> dict:
        result = self.ok(self.c.post(f"/v1/sandboxes/{sandbox_id}/exec", json={"command": command, "timeout_s": 120}))
        return result

    def out(self, sandbox_id: str, command: str) -> str:
        result = self.sh(sandbox_id, command)
        assert result["exit_code"] == 0, result
        return result["stdout"]

    def put_file(self, sandbox_id: str, path: str, data: bytes) -> None:
        response = self.c.put(f"/v1/sandboxes/{sandbox_id}/files/content", params={"path": path}, content=data)
        assert response.status_code in (200, 201, 204), response.text

    def snapshot(self, sandbox_id: str, **body: Any) -> dict:
        return self.ok(self.c.post(f"/v1/sandboxes/{sandbox_id}/snapshots", json=body), 201)

    def state(self, sandbox_id: str) -> str:
        return self.ok(self.c.get(f"/v1/sandboxes/{sandbox_id}"))["state"]

    def audit(self, sandbox_id: str, action: str) -> list[dict]:
        return self.ok(self.c.get("/v1/audit", params={"sandbox_id": sandbox_id, "action": action}))["records"]

    def delete(self, sandbox_id: str) -> None:
        self.c.delete(f"/v1/sandboxes/{sandbox_id}")

    def delete_snapshot(self, snapshot_id: str) -> None:
        self.c.delete(f"/v1/snapshots/{snapshot_id}", params={"force": "true"})


@pytest.fixture
def api(admin: httpx.Client) -> Iterator[Api]:
    """Helpers on the session daemon; sandboxes and snapshots the test made are removed afterwards."""
    helper = Api(admin)
    before_sandboxes = {s["id"] for s in admin.get("/v1/sandboxes").json()["sandboxes"]}
    before_snapshots = {s["id"] for s in admin.get("/v1/snapshots").json()["snapshots"]}
    yield helper
    for sandbox in admin.get("/v1/sandboxes").json()["sandboxes"]:
        if sandbox["id"] not in before_sandboxes:
            helper.delete(sandbox["id"])
    for snapshot in admin.get("/v1/snapshots").json()["snapshots"]:
        if snapshot["id"] not in before_snapshots:
            helper.delete_snapshot(snapshot["id"])


@pytest.fixture
def spawn(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[Callable[[], tuple[DaemonProcess, Api]]]:
    """Start daemons of the test's own, each on a fresh data directory; all cleaned up afterwards."""
    with contextlib.ExitStack() as stack:

        def start() -> tuple[DaemonProcess, Api]:
            proc = stack.enter_context(running_daemon(Path(tmp_path_factory.mktemp("s"))))
            headers = {"Authorization": f"Bearer {proc.admin_key}"}
            client = stack.enter_context(httpx.Client(base_url=proc.url, headers=headers, timeout=300))
            return proc, Api(client)

        yield start


@pytest.fixture(scope="session", autouse=True)
def _remove_session_images(daemon: DaemonProcess, docker_client: docker.DockerClient) -> Iterator[None]:
    """Images the session daemon made for these tests go when the session ends, whatever happened."""
    yield
    remove_owned_images(daemon.instance_id())
