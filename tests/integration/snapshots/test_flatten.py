"""A commit on an image already deep in layers is flattened into one, keeping files and settings."""

from __future__ import annotations

import docker

from sandboxd.runtime.docker import DockerRuntime
from tests.integration.conftest import IMAGE


async def test_deep_images_are_flattened(docker_client: docker.DockerClient) -> None:
    runtime = DockerRuntime("ins_flattentestflattentes")
    runtime.max_layers = len(docker_client.images.get(IMAGE).attrs["RootFS"]["Layers"]) + 1
    made: list[str] = []
    container = docker_client.containers.run(
        IMAGE, ["sleep", "infinity"], detach=True, user="1000", network_mode="none", environment={"OWN": "secret"},
        working_dir="/workspace",
    )
    try:
        container.exec_run(["sh", "-c", "echo first > /workspace/f1"])
        one = await runtime.commit(container.id, "sandboxd-flatten-test:one", labels={"k": "1"}, env=["OWN="])
        made.append("sandboxd-flatten-test:one")
        assert len(one.layers) == runtime.max_layers, "below the limit a commit adds one layer"
        second = docker_client.containers.run(
            "sandboxd-flatten-test:one", ["sleep", "infinity"], detach=True, network_mode="none"
        )
        try:
            second.exec_run(["sh", "-c", "echo second > /workspace/f2; rm /workspace/f1"])
            flat = await runtime.commit(second.id, "sandboxd-flatten-test:two", labels={"k": "2"}, env=["OWN="])
            made.append("sandboxd-flatten-test:two")
        finally:
            second.remove(force=True)
        assert len(flat.layers) == 1, "at the limit the filesystem is copied into one layer"
        assert "OWN=" in flat.env and any(e.startswith("PATH=") for e in flat.env)
        assert flat.labels["k"] == "2" and flat.labels["org.sandboxd.image-owner"] == "ins_flattentestflattentes"
        attrs = docker_client.images.get("sandboxd-flatten-test:two").attrs["Config"]
        assert attrs["User"] == "1000" and attrs["WorkingDir"] == "/workspace"
        out = docker_client.containers.run(
            "sandboxd-flatten-test:two", ["sh", "-c", "cat /workspace/f2; ls /workspace; id -u"], remove=True,
            network_mode="none", entrypoint=[],
        )
        assert out.decode() == "second\nf2\n1000\n"
    finally:
        container.remove(force=True)
        for tag in made:
            docker_client.images.remove(tag, force=True)
        await runtime.close()
