"""Pause and hibernation: a sleeping sandbox holds nothing, and wakes at its next call exactly as it was."""

from __future__ import annotations

import time

import docker
import pytest

from tests.integration.snapshots.conftest import Api, tiny_wheel, wait_for


def container_of(client: docker.DockerClient, sandbox_id: str):
    try:
        return client.containers.get(f"sandboxd-{sandbox_id}")
    except docker.errors.NotFound:
        return None


def test_hibernate_then_wake_through_exec_keeps_everything(api: Api, docker_client: docker.DockerClient) -> None:
    sandbox = api.create(env={"GREETING": "hi"}, on_wake="echo woke >> /workspace/wakes.log")
    sid = sandbox["id"]
    wheel_name, wheel = tiny_wheel()
    api.put_file(sid, f"/workspace/{wheel_name}", wheel)
    api.out(sid, f"pip install --user --break-system-packages --no-index /workspace/{wheel_name}")
    api.out(sid, "echo 'work in progress' > /workspace/notes.txt && mkdir -p ~/deep/er && head -c 1000000 /dev/urandom > ~/deep/er/blob")
    blob_sum = api.out(sid, "sha256sum ~/deep/er/blob")

    asleep = api.ok(api.c.post(f"/v1/sandboxes/{sid}/hibernate"))
    assert asleep["state"] == "hibernated"
    assert container_of(docker_client, sid) is None, "a hibernated sandbox keeps no container (no memory, no CPU)"

    started = time.perf_counter()
    result = api.sh(sid, 'cat /workspace/notes.txt; python3 -c "import tinypkg; print(tinypkg.GREETING)"; echo $GREETING')
    woke_in = time.perf_counter() - started
    assert result["exit_code"] == 0, result
    assert result["stdout"].splitlines() == ["work in progress", "hello from tinypkg 1.0", "hi"]
    assert api.out(sid, "sha256sum ~/deep/er/blob") == blob_sum
    assert api.state(sid) == "running"
    assert container_of(docker_client, sid) is not None
    assert woke_in < 5, f"waking took {woke_in:.2f}s"
    # The start command runs on every wake, in the background.
    wait_for(lambda: "woke" in api.sh(sid, "cat /workspace/wakes.log 2>/dev/null")["stdout"], what="on_wake to run")
    actions = [r["action"] for r in api.ok(api.c.get("/v1/audit", params={"sandbox_id": sid}))["records"]]
    assert "sandbox.hibernate" in actions


def test_hibernated_twice_keeps_changes_of_both_lives(api: Api) -> None:
    sid = api.create()["id"]
    api.out(sid, "echo one > /workspace/one")
    api.ok(api.c.post(f"/v1/sandboxes/{sid}/hibernate"))
    api.out(sid, "echo two > /workspace/two; rm /workspace/one")
    api.ok(api.c.post(f"/v1/sandboxes/{sid}/hibernate"))
    assert api.out(sid, "ls /workspace") == "two\n"


def test_pause_freezes_and_the_next_call_resumes(api: Api, docker_client: docker.DockerClient) -> None:
    sid = api.create()["id"]
    api.out(sid, "echo kept > /tmp/in-memory-fs")
    paused = api.ok(api.c.post(f"/v1/sandboxes/{sid}/pause"))
    assert paused["state"] == "paused"
    assert container_of(docker_client, sid).status == "paused"
    started = time.perf_counter()
    assert api.out(sid, "cat /tmp/in-memory-fs") == "kept\n"
    assert time.perf_counter() - started < 1
    assert api.state(sid) == "running"


def test_explicit_resume_and_wrong_states(api: Api) -> None:
    sid = api.create()["id"]
    api.ok(api.c.post(f"/v1/sandboxes/{sid}/hibernate"))
    assert api.ok(api.c.post(f"/v1/sandboxes/{sid}/resume"))["state"] == "running"
    api.ok(api.c.post(f"/v1/sandboxes/{sid}/hibernate"))
    response = api.c.post(f"/v1/sandboxes/{sid}/pause")
    assert response.status_code == 409 and "only a running sandbox" in response.json()["message"]


def test_deleting_a_hibernated_sandbox_removes_its_image(api: Api, docker_client: docker.DockerClient) -> None:
    sid = api.create()["id"]
    api.ok(api.c.post(f"/v1/sandboxes/{sid}/hibernate"))
    assert docker_client.images.get(f"sandboxd-hibernation:{sid}")
    assert api.c.delete(f"/v1/sandboxes/{sid}").status_code == 204
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(f"sandboxd-hibernation:{sid}")
