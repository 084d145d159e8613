"""SIGKILL in the middle of a snapshot or a hibernation, then a restart: consistent, nothing lost or half-present."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable

import docker
import httpx

from tests.integration.conftest import DaemonProcess
from tests.integration.snapshots.conftest import IMAGE_OWNER, wait_for

BIG = "head -c 400000000 /dev/urandom > /workspace/big && sha256sum /workspace/big"


def db_rows(proc: DaemonProcess, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(proc.data_dir / "sandboxd.db")) as conn:
        return conn.execute(sql).fetchall()


def in_background(call: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        try:
            call()
        except httpx.TransportError:
            pass  # the daemon dies under it: that is the point

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_kill_during_snapshot(spawn, docker_client: docker.DockerClient) -> None:
    proc, api = spawn()
    sid = api.create()["id"]
    digest = api.out(sid, BIG)
    call = in_background(lambda: api.c.post(f"/v1/sandboxes/{sid}/snapshots", json={"name": "doomed"}))
    wait_for(lambda: db_rows(proc, "SELECT id FROM snapshots WHERE state = 'creating'"), timeout=20, what="the snapshot to begin")
    proc.kill()
    call.join(10)

    proc.start()
    assert api.ok(api.c.get("/v1/snapshots"))["snapshots"] == [], "no half snapshot is visible"
    assert db_rows(proc, "SELECT id FROM snapshots") == []
    tags = {t for i in docker_client.images.list(filters={"label": f"{IMAGE_OWNER}={proc.instance_id()}"}) for t in i.tags}
    assert not tags, f"no snapshot image is left: {tags}"
    assert api.state(sid) == "running"
    assert api.out(sid, "sha256sum /workspace/big") == digest, "the sandbox carries on with its files"
    assert api.snapshot(sid)["state"] == "ready", "and can be snapshotted again"


def test_kill_during_hibernation(spawn, docker_client: docker.DockerClient) -> None:
    proc, api = spawn()
    sid = api.create()["id"]
    digest = api.out(sid, BIG)
    call = in_background(lambda: api.c.post(f"/v1/sandboxes/{sid}/hibernate"))
    wait_for(
        lambda: db_rows(proc, f"SELECT 1 FROM sandboxes WHERE id = '{sid}' AND state = 'hibernating'"),
        timeout=20,
        what="the hibernation to begin",
    )
    proc.kill()
    call.join(10)

    proc.start()
    state = api.state(sid)
    assert state in ("running", "paused", "hibernated"), state
    assert api.out(sid, "sha256sum /workspace/big") == digest
    assert api.state(sid) == "running"
    # It can go to sleep properly now, and wake again intact.
    assert api.ok(api.c.post(f"/v1/sandboxes/{sid}/hibernate"))["state"] == "hibernated"
    assert api.out(sid, "sha256sum /workspace/big") == digest


def test_kill_during_wake(spawn, docker_client: docker.DockerClient) -> None:
    proc, api = spawn()
    sid = api.create()["id"]
    api.out(sid, "echo asleep > /workspace/f")
    api.ok(api.c.post(f"/v1/sandboxes/{sid}/hibernate"))
    call = in_background(lambda: api.sh(sid, "true"))
    wait_for(
        lambda: db_rows(proc, f"SELECT 1 FROM sandboxes WHERE id = '{sid}' AND state != 'hibernated'"),
        timeout=20,
        what="the wake to begin",
    )
    proc.kill()
    call.join(10)

    proc.start()
    assert api.state(sid) in ("hibernated", "running")
    assert api.out(sid, "cat /workspace/f") == "asleep\n"
    containers = docker_client.containers.list(all=True, filters={"label": f"org.sandboxd.sandbox-id={sid}"})
    assert len(containers) == 1, "exactly one container after the interrupted wake and a new one"
