"""A fake engine with images, for the snapshot and lifecycle services' unit tests.

Containers behave as in ``runtime_fakes.FakeRuntime``; images are a dict of
name -> ImageInfo, with the engine's refusal to drop an image a container uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from sandboxd.config import Settings
from sandboxd.errors import RuntimeFailure
from sandboxd.runtime.base import LABEL_IMAGE_OWNER, ImageInfo, PathChange
from sandboxd.service.audit import AuditLog
from sandboxd.service.sandboxes import SandboxService
from sandboxd.service.snapshots import SnapshotService
from sandboxd.service.tenants import Principal
from sandboxd.store import Store, Tenant
from tests.unit.service.runtime_fakes import FakeAgent, FakeRuntime

ALICE = Principal(tenant_id="tnt_aaaaaaaaaaaaaaaaaaaa", key_id="key_aaaaaaaaaaaaaaaaaaaa", admin=False)
BOB = Principal(tenant_id="tnt_bbbbbbbbbbbbbbbbbbbb", key_id="key_bbbbbbbbbbbbbbbbbbbb", admin=False)
BASE = "sandboxd/sandbox:latest"
INSTANCE = "ins_aaaaaaaaaaaaaaaaaaaa"


class FakeImageRuntime(FakeRuntime):
    def __init__(self) -> None:
        super().__init__()
        self.image_table: dict[str, ImageInfo] = {
            BASE: ImageInfo(id="sha256:base", tags=(BASE,), size=1000, layers=("l0",), labels={}, env=("PATH=/bin",))
        }
        self.commits: list[tuple[str, str, list[str]]] = []
        self.fail_commit = False
        self.written: dict[str, int] = {}  # bytes "written" in each container since its image
        self.cpu: dict[str, float] = {}  # CPU seconds used; a container missing here cannot say

    async def image_exists(self, image: str) -> bool:
        return image in self.image_table

    async def create(self, spec: Any) -> str:
        cid = await super().create(spec)
        self.written[cid] = 0
        return cid

    async def commit(self, container_id: str, image: str, *, labels: dict[str, str], env: list[str]) -> ImageInfo:
        if self.fail_commit:
            raise RuntimeFailure("commit failed")
        base = self.image_table[self.specs[container_id].image]
        layer = hashlib.sha256(f"{container_id}{len(self.commits)}".encode()).hexdigest()[:8]
        info = ImageInfo(
            id=f"sha256:{layer}",
            tags=(image,),
            size=base.size + self.written.get(container_id, 0),
            layers=(*base.layers, layer),
            labels={**labels, LABEL_IMAGE_OWNER: INSTANCE},
            env=tuple(env),
        )
        self.image_table[image] = info
        self.commits.append((container_id, image, env))
        return info

    async def inspect_image(self, image: str) -> ImageInfo | None:
        return self.image_table.get(image)

    async def list_images(self, labels: dict[str, str], *, dangling: bool = False) -> list[ImageInfo]:
        if dangling:
            return []
        found = {i.id: i for i in self.image_table.values() if all(i.labels.get(k) == v for k, v in labels.items())}
        return [
            dataclasses.replace(i, tags=tuple(n for n, j in self.image_table.items() if j.id == i.id))
            for i in found.values()
        ]

    async def tag_image(self, image: str, ref: str) -> None:
        self.image_table[ref] = self.image_table[image]

    async def remove_image(self, image: str) -> None:
        if any(spec.image == image for cid, spec in self.specs.items() if cid in self.containers):
            return  # the engine refuses while a container runs from it
        self.image_table.pop(image, None)

    async def save_image(self, image: str, sink: Callable[[bytes], object]) -> None:
        sink(b"image " + image.encode())

    async def load_image(self, chunks: Iterable[bytes]) -> str:
        return "sha256:" + hashlib.sha256(b"".join(chunks)).hexdigest()

    async def changed_paths(self, container_id: str) -> list[PathChange]:
        return []

    async def cpu_seconds(self, container_id: str) -> float | None:
        return self.cpu.get(container_id)

    async def create_stopped(self, image: str) -> str:
        raise NotImplementedError

    async def read_archive(self, container_id: str, path: str, consume: Callable[[BinaryIO], Any]) -> Any:
        raise NotImplementedError


class WakeAgent(FakeAgent):
    """A supervisor that also starts background processes (the on_wake command)."""

    started: list[list[str]] = []

    async def start_process(self, argv: list[str], **options: Any) -> None:
        WakeAgent.started.append(list(argv))


def build(tmp_path: Path) -> tuple[SandboxService, SnapshotService, FakeImageRuntime, Store, AuditLog]:
    FakeAgent.healthy = True
    settings = Settings(data_dir=tmp_path, supervisor_start_timeout_s=0.2, max_cpus=4)
    store = Store(settings.database_path)
    for principal in (ALICE, BOB):
        store.insert_tenant(Tenant(principal.tenant_id, principal.tenant_id, 0.0))
    runtime = FakeImageRuntime()
    audit = AuditLog(store)
    WakeAgent.started = []
    sandboxes = SandboxService(settings, store, runtime, audit, connect=WakeAgent)
    return sandboxes, SnapshotService(store, runtime, sandboxes, audit), runtime, store, audit
