"""Sandbox lifecycle through the HTTP API, against the real engine."""

from __future__ import annotations

import docker
import httpx


def test_create_get_list_delete(admin: httpx.Client, docker_client: docker.DockerClient) -> None:
    created = admin.post(
        "/v1/sandboxes",
        json={"labels": {"team": "lifecycle"}, "env": {"GREETING": "hi"}, "cpus": 0.5, "memory_mb": 256, "pids": 128},
    )
    assert created.status_code == 201, created.text
    sbx = created.json()
    assert sbx["id"].startswith("sbx_")
    assert sbx["state"] == "running"
    assert sbx["limits"] == {"cpus": 0.5, "memory_mb": 256, "pids": 128, "nofile": 4096, "disk_gb": None}

    container = docker_client.containers.get(f"sandboxd-{sbx['id']}")
    host_config = container.attrs["HostConfig"]
    assert host_config["CapDrop"] == ["ALL"]
    # Only the internal sandbox network, whose one way out is the egress proxy (tests/integration/egress).
    assert host_config["NetworkMode"].startswith("sandboxd-egress-")
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [host_config["NetworkMode"]]
    assert host_config["PidsLimit"] == 128
    assert host_config["Memory"] == host_config["MemorySwap"] == 256 * 1024 * 1024
    assert host_config["NanoCpus"] == 500_000_000
    assert any("no-new-privileges" in opt for opt in host_config["SecurityOpt"])

    got = admin.get(f"/v1/sandboxes/{sbx['id']}").json()
    assert got["env"] == {"GREETING": "hi"} and got["labels"] == {"team": "lifecycle"}

    listed = admin.get("/v1/sandboxes", params={"label": "team=lifecycle"}).json()["sandboxes"]
    assert [s["id"] for s in listed] == [sbx["id"]]
    assert admin.get("/v1/sandboxes", params={"label": "team=other"}).json()["sandboxes"] == []
    running = admin.get("/v1/sandboxes", params={"state": "running"}).json()["sandboxes"]
    assert sbx["id"] in {s["id"] for s in running}

    env = admin.post(f"/v1/sandboxes/{sbx['id']}/exec", json={"command": "echo $GREETING"}).json()
    assert env["stdout"] == "hi\n"

    assert admin.delete(f"/v1/sandboxes/{sbx['id']}").status_code == 204
    assert admin.get(f"/v1/sandboxes/{sbx['id']}").status_code == 404
    assert not docker_client.containers.list(all=True, filters={"name": f"sandboxd-{sbx['id']}"})


def test_files_and_processes_persist_between_calls(admin: httpx.Client, sandbox: dict, sh) -> None:
    sid = sandbox["id"]
    sh(sid, "echo kept > /workspace/note.txt")
    started = admin.post(f"/v1/sandboxes/{sid}/processes", json={"command": "sleep 300", "name": "sleeper"})
    assert started.status_code == 201, started.text
    assert sh(sid, "cat /workspace/note.txt")["stdout"] == "kept\n"
    assert "sleep 300" in sh(sid, "ps -eo args")["stdout"]


def test_unknown_image_is_a_clear_422(admin: httpx.Client) -> None:
    response = admin.post("/v1/sandboxes", json={"image": "no-such-image:never"})
    assert response.status_code == 422
    assert "no-such-image:never" in response.json()["message"]
    assert "not present" in response.json()["message"]


def test_image_without_python_fails_cleanly(admin: httpx.Client, docker_client: docker.DockerClient) -> None:
    # The bootstrap base image has no python3, so the supervisor cannot start.
    before = {c.id for c in docker_client.containers.list(all=True)}
    response = admin.post("/v1/sandboxes", json={"image": "debian:trixie-slim"})
    assert response.status_code == 503, response.text
    assert "python3" in response.json()["message"]
    after = {c.id for c in docker_client.containers.list(all=True)}
    assert after <= before, "a failed create must not leave a container behind"
