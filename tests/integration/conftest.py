"""A real sandboxd, started as its own process against the real Docker engine.

One daemon serves the whole session (starting one costs a second); tests create
the sandboxes they need and delete them, and everything the daemon owns is
force-removed at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import docker
import httpx
import pytest

IMAGE = os.environ.get("SANDBOXD_TEST_IMAGE", "sandboxd/sandbox:latest")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DaemonProcess:
    """A `sandboxd serve` child process; restartable on the same data directory."""

    data_dir: Path
    port: int
    admin_key: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            **self.env,
            "SANDBOXD_DATA_DIR": str(self.data_dir),
            "SANDBOXD_PORT": str(self.port),
            "SANDBOXD_API_KEY": self.admin_key,
        }
        self._close_log()
        self.log = log = open(self.data_dir.parent / "daemon.log", "ab")  # noqa: SIM115 - closed on stop
        self.proc = subprocess.Popen([sys.executable, "-m", "sandboxd", "serve"], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandboxd exited with {self.proc.returncode}; see {log.name}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("sandboxd did not answer within 30 s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def instance_id(self) -> str | None:
        db = self.data_dir / "sandboxd.db"
        if not db.exists():
            return None
        with contextlib.closing(sqlite3.connect(db)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()
        return row[0] if row else None


def remove_owned_containers(instance_id: str | None) -> None:
    """Everything a test daemon made on the engine and the host: containers, images, network, firewall."""
    if not instance_id:
        return
    client = docker.from_env()
    try:
        for container in client.containers.list(all=True, filters={"label": f"org.sandboxd.instance={instance_id}"}):
            container.remove(force=True)
    finally:
        client.close()
    remove_owned_images(instance_id)
    remove_egress(instance_id)


def remove_owned_images(instance_id: str | None) -> None:
    """Snapshot and hibernation images a test daemon made."""
    if not instance_id:
        return
    client = docker.from_env()
    owned = f"org.sandboxd.image-owner={instance_id}"
    try:
        for image in client.images.list(filters={"label": owned}):
            for name in image.tags or [image.id]:
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(name, force=True)
        for image in client.images.list(filters={"label": owned, "dangling": True}):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image.id, force=True)
    finally:
        client.close()


@contextlib.contextmanager
def running_daemon(base: Path, env: dict[str, str] | None = None) -> Iterator[DaemonProcess]:
    """A daemon of its own on ``base``; stopped, and all it made removed, on leaving."""
    proc = DaemonProcess(
        data_dir=base / "data", port=free_port(), admin_key="sbd-test-" + secrets.token_urlsafe(32), env=env or {}
    )
    proc.start()
    try:
        yield proc
    finally:
        instance = proc.instance_id()
        proc.stop()
        remove_owned_containers(instance)


def remove_egress(instance_id: str) -> None:
    """The daemon's sandbox network and its host firewall rules, which outlive it by design."""
    from sandboxd.egress.firewall import Firewall, FirewallPlan
    from sandboxd.egress.network import bridge_name, network_name

    client = docker.from_env()
    try:
        for network in client.networks.list(names=[network_name(instance_id)]):
            network.remove()
    finally:
        client.close()
    Firewall(FirewallPlan(bridge_name(instance_id), "", 0)).remove()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"the sandbox image {IMAGE} is missing: run scripts/test, which builds it")
    yield client
    client.close()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient) -> Iterator[DaemonProcess]:
    # Short base: unix socket paths are capped at 108 bytes.
    with running_daemon(Path(tmp_path_factory.mktemp("d"))) as proc:
        yield proc


@pytest.fixture(scope="session")
def admin(daemon: DaemonProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=daemon.url, headers={"Authorization": f"Bearer {daemon.admin_key}"}, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def tenant_client(daemon: DaemonProcess, admin: httpx.Client) -> Iterator[httpx.Client]:
    """A client of a second, non-admin tenant."""
    tenant = admin.post("/v1/tenants", json={"name": "tenant-b-" + secrets.token_hex(3)}).json()
    key = admin.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "b"}).json()["key"]
    with httpx.Client(base_url=daemon.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        yield c


@pytest.fixture
def sandbox(admin: httpx.Client) -> Iterator[dict]:
    """A fresh running sandbox of the admin's tenant, deleted afterwards."""
    response = admin.post("/v1/sandboxes", json={"labels": {"test": "yes"}})
    assert response.status_code == 201, response.text
    body = response.json()
    yield body
    admin.delete(f"/v1/sandboxes/{body['id']}")


@pytest.fixture
def sh(admin: httpx.Client):
    """Run a shell command in a sandbox through the API and return the exec result."""

    def run(sandbox_id: str, command: str, **extra: object) -> dict:
        response = admin.post(f"/v1/sandboxes/{sandbox_id}/exec", json={"command": command, **extra})
        assert response.status_code == 200, response.text
        return response.json()

    return run
