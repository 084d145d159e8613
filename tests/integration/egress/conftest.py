"""A real sandboxd with its real egress proxy, real sandboxes, and an HTTPS site on this host.

The daemon here trusts the test site's CA on top of the system bundle (so PyPI
still verifies) and listens on every interface, so that its API port is one
that only the host firewall keeps sandboxes from.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.integration.conftest import DaemonProcess, running_daemon
from tests.integration.egress.upstream import Upstream, host_address, make_certs

Shell = Callable[..., dict[str, Any]]


@pytest.fixture(scope="package")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    address = host_address()
    certs = make_certs(tmp_path_factory.mktemp("upstream"), address)
    server = Upstream(certs, address)
    with server.running():
        yield server


@pytest.fixture(scope="package")
def egress_daemon(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, docker_client: docker.DockerClient
) -> Iterator[DaemonProcess]:
    env = {"SANDBOXD_HOST": "0.0.0.0", "SANDBOXD_EGRESS_UPSTREAM_CA_BUNDLE": str(upstream.certs.trust_bundle)}
    with running_daemon(Path(tmp_path_factory.mktemp("e")), env) as proc:
        yield proc


@pytest.fixture(scope="package")
def api(egress_daemon: DaemonProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {egress_daemon.admin_key}"}
    with httpx.Client(base_url=egress_daemon.url, headers=headers, timeout=120) as client:
        yield client


@pytest.fixture
def make_sandbox(api: httpx.Client) -> Iterator[Callable[..., dict[str, Any]]]:
    made: list[str] = []

    def make(**body: Any) -> dict[str, Any]:
        response = api.post("/v1/sandboxes", json=body)
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
        return response.json()

    yield make
    for sandbox_id in made:
        api.delete(f"/v1/sandboxes/{sandbox_id}")


@pytest.fixture
def make_secret(api: httpx.Client) -> Iterator[Callable[..., str]]:
    """Store a secret with a fresh random value; returns the value. Deleted afterwards."""
    made: list[str] = []

    def make(name: str, hosts: list[str], **extra: Any) -> str:
        value = f"live-{name.lower()}-{secrets.token_hex(12)}"
        response = api.put(f"/v1/secrets/{name}", json={"value": value, "hosts": hosts, **extra})
        assert response.status_code in (200, 201), response.text
        made.append(name)
        return value

    yield make
    for name in made:
        api.delete(f"/v1/secrets/{name}")


@pytest.fixture
def sh(api: httpx.Client) -> Shell:
    def run(sandbox_id: str, command: str, **extra: Any) -> dict[str, Any]:
        response = api.post(f"/v1/sandboxes/{sandbox_id}/exec", json={"command": command, "timeout_s": 120, **extra})
        assert response.status_code == 200, response.text
        return response.json()

    return run


def allow(*hosts: str, port: int | None = None) -> dict[str, Any]:
    """An ``egress`` field allowing the hosts given (optionally one port)."""
    return {"rules": [{"action": "allow", "host": h, **({"port": port} if port else {})} for h in hosts]}


def wait_for_log(
    api: httpx.Client, sandbox_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 5.0
) -> list[dict[str, Any]]:
    """The sandbox's egress log (newest first) once ``done`` says it has what is expected; ingestion lags a little."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = api.get(f"/v1/sandboxes/{sandbox_id}/egress/log", params={"limit": 1000}).json()["records"]
        if done(records):
            return records
        assert time.monotonic() < deadline, f"the egress log did not get there within {timeout_s}s: {records}"
        time.sleep(0.05)
