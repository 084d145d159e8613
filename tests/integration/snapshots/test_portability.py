"""Export a snapshot as one file and import it on another daemon; damaged files are refused cleanly."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable

import docker

from tests.integration.conftest import DaemonProcess
from tests.integration.snapshots.conftest import IMAGE_OWNER, Api


def owned_images(client: docker.DockerClient, instance: str | None) -> set[str]:
    return {tag for image in client.images.list(filters={"label": f"{IMAGE_OWNER}={instance}"}) for tag in image.tags}


def snapshot_tags(client: docker.DockerClient) -> set[str]:
    return {tag for image in client.images.list(name="sandboxd-snapshot") for tag in image.tags}


def test_export_then_import_on_a_fresh_data_dir(
    api: Api, spawn: Callable[[], tuple[DaemonProcess, Api]], docker_client: docker.DockerClient, tmp_path
) -> None:
    sid = api.create(env={"TOKEN": "placeholder-value"}, on_wake="true")["id"]
    api.out(sid, "echo exported > /workspace/payload.txt")
    snap = api.snapshot(sid, name="to move", labels={"team": "a"})

    target = tmp_path / "snapshot.tar"
    with api.c.stream("GET", f"/v1/snapshots/{snap['id']}/export") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-tar"
        with target.open("wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
    assert target.stat().st_size == int(response.headers["content-length"])
    with tarfile.open(target) as tar:
        assert tar.getnames() == ["manifest.json", "image.tar", "SHA256SUMS"]
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["snapshot"]["name"] == "to move" and manifest["image"]["layers"]
    assert "placeholder-value" not in json.dumps(manifest), "environment values stay on the host"

    _, other = spawn()
    with target.open("rb") as body:
        imported = other.ok(other.c.post("/v1/snapshots/import", content=body), 201)
    assert imported["state"] == "ready" and imported["name"] == "to move" and imported["labels"]["team"] == "a"
    fork = other.ok(other.c.post(f"/v1/snapshots/{imported['id']}/fork", json={"count": 1}), 201)["sandboxes"][0]
    assert other.out(fork["id"], "cat /workspace/payload.txt") == "exported\n"


def test_corrupt_and_truncated_imports_are_refused_leaving_nothing(
    api: Api, spawn: Callable[[], tuple[DaemonProcess, Api]], docker_client: docker.DockerClient
) -> None:
    sid = api.create()["id"]
    api.out(sid, "head -c 100000 /dev/urandom > /workspace/r")
    snap = api.snapshot(sid)
    data = api.c.get(f"/v1/snapshots/{snap['id']}/export").content
    proc, other = spawn()
    tags_before = snapshot_tags(docker_client)

    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    cases = {
        "corrupt": (bytes(flipped), "corrupt"),
        "truncated": (data[: len(data) * 2 // 3], "truncated"),
        "not a tar": (b"hello" * 1000, "not a readable tar"),
        "empty": (b"", "the upload is empty"),
    }
    for name, (body, message) in cases.items():
        response = other.c.post("/v1/snapshots/import", content=body)
        assert response.status_code == 422, (name, response.text)
        assert message in response.json()["message"], (name, response.text)

    # A manifest that lies about a size is refused too.
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for member in src:
            payload = src.extractfile(member).read()
            if member.name == "manifest.json":
                manifest = json.loads(payload)
                manifest["parts"][0]["size"] += 1
                payload = json.dumps(manifest).encode()
                member.size = len(payload)
            dst.addfile(member, io.BytesIO(payload))
    response = other.c.post("/v1/snapshots/import", content=buf.getvalue())
    assert response.status_code == 422 and "the manifest says" in response.json()["message"]

    assert other.ok(other.c.get("/v1/snapshots"))["snapshots"] == []
    # Other daemons on the engine may remove their images meanwhile; none may have been added.
    assert snapshot_tags(docker_client) <= tags_before, "nothing was loaded and named"
    assert not owned_images(docker_client, proc.instance_id())
    assert not list((proc.data_dir / "spool").glob("*")), "no spooled upload is left behind"
