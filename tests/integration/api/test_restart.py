"""A daemon killed and started again adopts its sandboxes, processes and files intact."""

from __future__ import annotations

from pathlib import Path

import docker
import httpx

from tests.integration.conftest import running_daemon


def test_restart_adopts_running_sandboxes(tmp_path_factory, docker_client: docker.DockerClient) -> None:
    with (
        running_daemon(Path(tmp_path_factory.mktemp("r"))) as proc,
        httpx.Client(base_url=proc.url, headers={"Authorization": f"Bearer {proc.admin_key}"}, timeout=60) as client,
    ):
        sid = client.post("/v1/sandboxes", json={}).json()["id"]
        gone_id = client.post("/v1/sandboxes", json={}).json()["id"]
        client.put(f"/v1/sandboxes/{sid}/files/content", params={"path": "state.txt"}, content=b"before")
        bg = client.post(f"/v1/sandboxes/{sid}/processes", json={"command": "sleep 600"}).json()

        proc.kill()
        docker_client.containers.get(f"sandboxd-{gone_id}").remove(force=True)
        stray = docker_client.containers.run(
            "sandboxd/sandbox:latest", ["sleep", "600"], detach=True, labels={"unrelated": "yes"}
        )
        try:
            proc.start()
            assert client.get(f"/v1/sandboxes/{sid}").json()["state"] == "running"
            gone = client.get(f"/v1/sandboxes/{gone_id}").json()
            assert gone["state"] == "failed" and "disappeared" in gone["error"]
            processes = client.get(f"/v1/sandboxes/{sid}/processes").json()["processes"]
            assert any(p["id"] == bg["id"] and p["state"] == "running" for p in processes)
            assert client.get(f"/v1/sandboxes/{sid}/files/content", params={"path": "state.txt"}).content == b"before"
            assert stray.reload() is None and stray.status == "running", "containers we do not own are left alone"
        finally:
            stray.remove(force=True)
