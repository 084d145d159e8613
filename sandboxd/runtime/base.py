"""The seam between sandboxd and whatever runs containers.

The service layer speaks only this protocol; ``DockerRuntime`` is the one real
implementation today, and a Kubernetes one can follow without touching the
service. Everything inside a running sandbox (exec, files, processes) goes
through the sandbox's supervisor, reached at ``socket_path``; the runtime's job
is the container's life: create, start, freeze, stop, remove, and report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

T = TypeVar("T")

# Labels that mark a container as ours; reconciliation never touches anything without them.
LABEL_MANAGED = "org.sandboxd.managed"
LABEL_INSTANCE = "org.sandboxd.instance"
LABEL_SANDBOX = "org.sandboxd.sandbox-id"
LABEL_TENANT = "org.sandboxd.tenant-id"

# Labels on the images sandboxd makes (snapshots, hibernated sandboxes): whose they are and what for.
LABEL_IMAGE_OWNER = "org.sandboxd.image-owner"
LABEL_SNAPSHOT = "org.sandboxd.snapshot-id"
LABEL_HIBERNATION = "org.sandboxd.hibernation-of"

# Where the supervisor lives and listens inside every sandbox.
SUPERVISOR_DIR_IN_SANDBOX = "/opt/sandboxd"
SUPERVISOR_IN_SANDBOX = f"{SUPERVISOR_DIR_IN_SANDBOX}/supervisor.py"
SOCKET_DIR_IN_SANDBOX = "/run/sandboxd"
SOCKET_NAME = "sock"
SANDBOX_UID = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    cpus: float
    memory_mb: int
    pids: int
    nofile: int
    disk_gb: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    sandbox_id: str
    tenant_id: str
    image: str
    limits: Limits
    env: dict[str, str] = field(default_factory=dict)
    socket_dir: Path = Path()
    # A network to join (the egress design's sandbox network); None means no network at all.
    network: str | None = None
    # The address to take on that network; None lets the engine choose.
    ip: str | None = None
    # Files placed in the container before it starts: absolute path -> (content, mode).
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    id: str
    sandbox_id: str | None
    status: str  # created, running, paused, restarting, exited, dead
    exit_code: int | None = None
    oom_killed: bool = False
    error: str | None = None
    # Address on the sandbox network, when it has one.
    ip: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """A container network as sandboxd needs to know it (sandboxd.egress.network)."""

    id: str
    name: str
    internal: bool
    subnet: str | None
    gateway: str | None
    options: dict[str, str]
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    # Bytes of the whole filesystem: every layer, base image included.
    size: int
    # Layer digests (diff ids), base first; an image built on another extends its list.
    layers: tuple[str, ...]
    labels: dict[str, str]
    env: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PathChange:
    """One entry of the engine's own diff of a container against its image."""

    path: str
    kind: str  # added, modified, deleted


class Runtime(Protocol):
    async def image_exists(self, image: str) -> bool: ...

    async def create(self, spec: ContainerSpec) -> str:
        """Create and start the container; returns its id. The supervisor may not answer yet."""
        ...

    async def inspect(self, container_id: str) -> ContainerInfo | None: ...

    async def list_managed(self) -> list[ContainerInfo]:
        """Every container this daemon instance owns, in any state."""
        ...

    async def start(self, container_id: str) -> None: ...

    async def pause(self, container_id: str) -> None: ...

    async def unpause(self, container_id: str) -> None: ...

    async def remove(self, container_id: str) -> None:
        """Force-remove; a container that is already gone is not an error."""
        ...

    async def close(self) -> None: ...

    # --- the sandbox network (sandboxd.egress.network) ---

    async def ensure_network(self, name: str, *, options: dict[str, str], labels: dict[str, str]) -> NetworkInfo:
        """The internal bridge network ``name``, created if absent with a subnet the engine picks
        and then pins, so containers can be given addresses of sandboxd's choosing."""
        ...

    async def inspect_network(self, name: str) -> NetworkInfo | None: ...

    async def remove_network(self, name: str) -> None:
        """Remove it; a network that is gone is not an error."""
        ...

    # --- images: snapshots, hibernation, export (sandboxd.service.snapshots and friends) ---

    async def commit(self, container_id: str, image: str, *, labels: dict[str, str], env: list[str]) -> ImageInfo:
        """Save the container's filesystem as ``image`` (a new layer on its own image), frozen meanwhile.

        ``env`` overrides environment entries the container would pass on to the image (the
        sandbox's own variables, which belong to it and not to its snapshots)."""
        ...

    async def inspect_image(self, image: str) -> ImageInfo | None: ...

    async def list_images(self, labels: dict[str, str], *, dangling: bool = False) -> list[ImageInfo]: ...

    async def tag_image(self, image: str, ref: str) -> None: ...

    async def remove_image(self, image: str) -> None:
        """Drop the reference unless a container or child image still needs it; missing is not an error."""
        ...

    async def save_image(self, image: str, sink: Callable[[bytes], object]) -> None:
        """Stream the image as a ``docker save`` tar into ``sink`` (called from a worker thread)."""
        ...

    async def load_image(self, chunks: Iterable[bytes]) -> str:
        """Load a ``docker save`` tar (iterated in a worker thread); returns the image id."""
        ...

    async def changed_paths(self, container_id: str) -> list[PathChange]: ...

    async def create_stopped(self, image: str) -> str:
        """A container made from ``image`` and never started, to read the image's files through."""
        ...

    async def read_archive(self, container_id: str, path: str, consume: Callable[[BinaryIO], T]) -> T:
        """Run ``consume`` in a worker thread on a tar stream of ``path`` in the container."""
        ...

    async def cpu_seconds(self, container_id: str) -> float | None:
        """CPU time the container's processes have used so far; None when the engine cannot say."""
        ...
