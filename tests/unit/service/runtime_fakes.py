"""Fakes for unit tests of the service layer: a runtime that keeps containers in a dict,
and a supervisor that answers health checks; no Docker, no sockets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sandboxd.errors import SandboxUnavailable
from sandboxd.runtime.base import ContainerInfo, ContainerSpec


class FakeRuntime:
    def __init__(self) -> None:
        self.containers: dict[str, ContainerInfo] = {}
        self.specs: dict[str, ContainerSpec] = {}
        self.images = {"sandboxd/sandbox:latest"}
        self.fail_create = False

    async def image_exists(self, image: str) -> bool:
        return image in self.images

    async def create(self, spec: ContainerSpec) -> str:
        if self.fail_create:
            raise SandboxUnavailable("engine said no")
        cid = f"c{len(self.specs)}"
        self.specs[cid] = spec
        (spec.socket_dir / "sock").touch()  # where a real supervisor would listen
        self.containers[cid] = ContainerInfo(id=cid, sandbox_id=spec.sandbox_id, status="running")
        return cid

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        return self.containers.get(container_id)

    async def list_managed(self) -> list[ContainerInfo]:
        return list(self.containers.values())

    def _set(self, cid: str, status: str) -> None:
        self.containers[cid] = dataclasses.replace(self.containers[cid], status=status)

    async def start(self, container_id: str) -> None:
        self._set(container_id, "running")

    async def pause(self, container_id: str) -> None:
        self._set(container_id, "paused")

    async def unpause(self, container_id: str) -> None:
        self._set(container_id, "running")

    async def remove(self, container_id: str) -> None:
        self.containers.pop(container_id, None)

    async def close(self) -> None:
        pass


class FakeAgent:
    healthy = True

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    async def health(self) -> dict:
        if not FakeAgent.healthy:
            raise SandboxUnavailable("no answer")
        return {"ok": True}

    async def aclose(self) -> None:
        pass
