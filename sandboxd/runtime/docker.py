"""Sandboxes as Docker containers, through docker-py.

The only module that imports docker-py. Its calls block, so each runs in a worker
thread; docker errors become ``sandboxd.errors`` here, once. The container gets the
secure defaults of DESIGN.md: the sandbox user, no capabilities, no new
privileges, the engine's default seccomp profile, pid/memory/cpu/nofile limits,
swap equal to memory, and no network but the one it is given. Its main process is
the supervisor, bind-mounted read-only from the host, so any image with python3 works.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import py_compile
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, TypeVar

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool, Mount, Ulimit

from sandboxd.errors import ImageNotFound, InvalidRequest, NotFound, RuntimeFailure
from sandboxd.runtime.base import (
    LABEL_IMAGE_OWNER,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_SANDBOX,
    LABEL_TENANT,
    SANDBOX_UID,
    SOCKET_DIR_IN_SANDBOX,
    SOCKET_NAME,
    SUPERVISOR_DIR_IN_SANDBOX,
    SUPERVISOR_IN_SANDBOX,
    ContainerInfo,
    ContainerSpec,
    ImageInfo,
    NetworkInfo,
    PathChange,
)
from sandboxd.supervisor import SUPERVISOR_PATH

T = TypeVar("T")


# Imported rather than run as a script, so Python can use the bytecode we ship beside it.
_SUPERVISOR_MAIN = (
    f"import sys; sys.path.insert(0, {str(PurePosixPath(SUPERVISOR_IN_SANDBOX).parent)!r}); "
    f"import {PurePosixPath(SUPERVISOR_IN_SANDBOX).stem} as s; sys.exit(s.main(sys.argv[1:]))"
)


def supervisor_files() -> dict[str, tuple[bytes, int]]:
    """The supervisor's source, plus its bytecode for this interpreter's Python version.

    Compiling the supervisor costs a new sandbox ~15 ms of its start; an image whose python3 is
    the same minor version as the daemon's (the default image) loads the bytecode instead, and
    any other simply ignores it. Unchecked-hash bytecode does not depend on file times.
    """
    source = SUPERVISOR_PATH.read_bytes()
    target = PurePosixPath(SUPERVISOR_IN_SANDBOX)
    files = {target.name: (source, 0o644)}
    with tempfile.TemporaryDirectory() as tmp:
        cfile = Path(tmp) / "supervisor.pyc"
        py_compile.compile(
            str(SUPERVISOR_PATH),
            cfile=str(cfile),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        files[f"__pycache__/{target.stem}.{sys.implementation.cache_tag}.pyc"] = (cfile.read_bytes(), 0o644)
    return files


class SharedFiles:
    """Read-only files shared by every sandbox, kept in one host directory.

    Each is written once, atomically (temp file, then rename), so a sandbox never
    sees half a file; contents are addressed by their hash, so a changed CA or a
    new supervisor simply gets a new name.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)

    def file(self, payload: bytes, mode: int) -> Path:
        path = self._root / "files" / f"{hashlib.sha256(payload).hexdigest()[:32]}-{mode:o}"
        if not path.exists():
            _write_atomically(path, payload, mode)
        return path

    def directory(self, name: str, files: dict[str, tuple[bytes, int]]) -> Path:
        digest = hashlib.sha256(b"".join(p.encode() + c for p, (c, _) in sorted(files.items()))).hexdigest()[:16]
        base = self._root / f"{name}-{digest}"
        for relative, (payload, mode) in files.items():
            target = base / relative
            if not target.exists():
                _write_atomically(target, payload, mode)
        for directory in (base, *{(base / r).parent for r in files}):
            directory.chmod(0o755)
        return base


def _write_atomically(path: Path, payload: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(payload)
    temp.chmod(mode)
    os.replace(temp, path)


class DockerRuntime:
    # Images with this many layers are flattened when committed (see commit).
    max_layers = 100

    def __init__(
        self,
        instance_id: str,
        *,
        shared_dir: Path | None = None,
        container_runtime: str | None = None,
        client: Any = None,
    ) -> None:
        self._instance_id = instance_id
        self._container_runtime = container_runtime
        # Files every sandbox gets (the supervisor, the proxy's CA) are bind-mounted read-only
        # from here: copying them in would cost each create ~45 ms of the engine's archive API.
        # It must be a path on the engine's host (see Settings.socket_dir).
        self._shared = SharedFiles(shared_dir or Path(tempfile.mkdtemp(prefix="sandboxd-shared-")))
        try:
            self._client = client or docker.from_env(max_pool_size=32)
            self._client.ping()
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(
                "cannot reach the Docker engine: start dockerd (scripts/serve does this when run as root) "
                f"or set DOCKER_HOST ({exc})"
            ) from None
        self._supervisor_dir = self._shared.directory("supervisor", supervisor_files())

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFound(f"image not found: {exc.explanation}") from None
        except docker.errors.APIError as exc:
            raise RuntimeFailure(f"Docker engine error: {exc.explanation or exc}") from None
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"Docker engine error: {exc}") from None

    async def image_exists(self, image: str) -> bool:
        try:
            await asyncio.to_thread(self._client.images.get, image)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code in (400, 404):
                return False
            raise RuntimeFailure(f"Docker engine error: {exc.explanation or exc}") from None
        return True

    def _create_kwargs(self, spec: ContainerSpec) -> dict[str, Any]:
        limits = spec.limits
        kwargs: dict[str, Any] = dict(
            image=spec.image,
            entrypoint=["python3", "-c", _SUPERVISOR_MAIN, "--socket", f"{SOCKET_DIR_IN_SANDBOX}/{SOCKET_NAME}"],
            command=[],
            name=f"sandboxd-{spec.sandbox_id}",
            hostname="sandbox",
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            working_dir="/workspace",
            environment=spec.env,
            labels={
                LABEL_MANAGED: "true",
                LABEL_INSTANCE: self._instance_id,
                LABEL_SANDBOX: spec.sandbox_id,
                LABEL_TENANT: spec.tenant_id,
            },
            init=True,
            detach=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            pids_limit=limits.pids,
            mem_limit=limits.memory_mb * 1024 * 1024,
            memswap_limit=limits.memory_mb * 1024 * 1024,
            nano_cpus=int(limits.cpus * 1e9),
            ulimits=[Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile)],
            mounts=[
                Mount(target=SOCKET_DIR_IN_SANDBOX, source=str(spec.socket_dir), type="bind"),
                Mount(target=SUPERVISOR_DIR_IN_SANDBOX, source=str(self._supervisor_dir), type="bind", read_only=True),
                *(
                    Mount(target=target, source=str(self._shared.file(payload, mode)), type="bind", read_only=True)
                    for target, (payload, mode) in sorted(spec.files.items())
                ),
            ],
        )
        if spec.network is None:
            kwargs["network_mode"] = "none"
        else:
            kwargs["network"] = spec.network
            if spec.ip is not None:
                kwargs["networking_config"] = {
                    spec.network: self._client.api.create_endpoint_config(ipv4_address=spec.ip)
                }
        if limits.disk_gb:
            kwargs["storage_opt"] = {"size": f"{limits.disk_gb}G"}
        if self._container_runtime:
            kwargs["runtime"] = self._container_runtime
        return kwargs

    async def create(self, spec: ContainerSpec) -> str:
        def create_and_start() -> str:
            try:
                container = self._client.containers.create(**self._create_kwargs(spec))
            except docker.errors.APIError as exc:
                if spec.limits.disk_gb and "storage" in str(exc.explanation or "").lower():
                    raise InvalidRequest(
                        "disk limits are not supported by this Docker engine's storage driver "
                        "(overlay2 needs an xfs backing filesystem mounted with pquota); omit 'disk_gb'"
                    ) from None
                raise
            try:
                container.start()
            except BaseException:
                container.remove(force=True)
                raise
            return container.id

        return await self._call(create_and_start)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        def get() -> ContainerInfo | None:
            try:
                container = self._client.containers.get(container_id)
            except docker.errors.NotFound:
                return None
            return _info(container.attrs)

        return await self._call(get)

    async def list_managed(self) -> list[ContainerInfo]:
        def listing() -> list[ContainerInfo]:
            found = self._client.api.containers(
                all=True, filters={"label": [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={self._instance_id}"]}
            )
            return [
                ContainerInfo(
                    id=c["Id"],
                    sandbox_id=(c.get("Labels") or {}).get(LABEL_SANDBOX),
                    status=c.get("State", "unknown"),
                )
                for c in found
            ]

        return await self._call(listing)

    async def start(self, container_id: str) -> None:
        await self._call(self._client.api.start, container_id)

    async def pause(self, container_id: str) -> None:
        await self._call(self._client.api.pause, container_id)

    async def unpause(self, container_id: str) -> None:
        await self._call(self._client.api.unpause, container_id)

    async def remove(self, container_id: str) -> None:
        def remove() -> None:
            try:
                self._client.api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                # A removal already under way (e.g. a concurrent delete) is as good as done.
                if exc.status_code != 409:
                    raise

        await self._call(remove)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    # --- the sandbox network -------------------------------------------------------------------

    async def ensure_network(self, name: str, *, options: dict[str, str], labels: dict[str, str]) -> NetworkInfo:
        def ensure() -> NetworkInfo:
            found = self._network_attrs(name)
            if found is not None:
                return _network_info(found)
            # The engine only accepts chosen container addresses on a network whose subnet was
            # given at creation. Its own pool picks a free subnet best, so: let it pick, note the
            # subnet, and create the network again naming it. Another network taking that subnet
            # in between only costs a retry.
            for _ in range(5):
                probe = self._client.api.create_network(name, driver="bridge", internal=True, options=options, labels=labels)
                attrs = self._client.api.inspect_network(probe["Id"])
                self._client.api.remove_network(probe["Id"])
                pool = ((attrs.get("IPAM") or {}).get("Config") or [{}])[0]
                ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=pool.get("Subnet"), gateway=pool.get("Gateway"))])
                try:
                    made = self._client.api.create_network(
                        name, driver="bridge", internal=True, options=options, labels=labels, ipam=ipam
                    )
                except docker.errors.APIError as exc:
                    if exc.status_code in (400, 403) and "overlap" in str(exc.explanation or "").lower():
                        continue
                    raise
                return _network_info(self._client.api.inspect_network(made["Id"]))
            raise RuntimeFailure(f"could not find a free subnet for the sandbox network {name}")

        return await self._call(ensure)

    async def inspect_network(self, name: str) -> NetworkInfo | None:
        def inspect() -> NetworkInfo | None:
            found = self._network_attrs(name)
            return _network_info(found) if found is not None else None

        return await self._call(inspect)

    async def remove_network(self, name: str) -> None:
        def remove() -> None:
            try:
                self._client.api.remove_network(name)
            except docker.errors.NotFound:
                pass

        await self._call(remove)

    def _network_attrs(self, name: str) -> dict[str, Any] | None:
        # By exact name: the engine's name filter matches substrings.
        for candidate in self._client.api.networks(names=[name]):
            if candidate.get("Name") == name:
                return self._client.api.inspect_network(candidate["Id"])
        return None

    # --- images: snapshots, hibernation, export ------------------------------------------------

    async def commit(self, container_id: str, image: str, *, labels: dict[str, str], env: list[str]) -> ImageInfo:
        repository, _, tag = image.rpartition(":")
        # The engine copies the container's labels into the image; blank ours, so a container
        # someone else makes from a snapshot is never mistaken for one of our sandboxes.
        conf_labels = {LABEL_MANAGED: "", LABEL_INSTANCE: "", LABEL_SANDBOX: "", LABEL_TENANT: ""}
        conf_labels.update(labels, **{LABEL_IMAGE_OWNER: self._instance_id})

        def commit() -> ImageInfo:
            container = self._client.api.inspect_container(container_id)
            underneath = self._client.api.inspect_image(container["Image"])
            if len((underneath.get("RootFS") or {}).get("Layers") or ()) >= self.max_layers:
                return flatten(container)
            result = self._client.api.commit(
                container_id, repository=repository, tag=tag, conf={"Env": env, "Labels": conf_labels}, pause=True
            )
            return _image_info(self._client.api.inspect_image(result["Id"]))

        def flatten(container: dict[str, Any]) -> ImageInfo:
            # Each commit adds a layer and overlay2 stacks at most 128: a sandbox hibernated and
            # woken a hundred times is copied into a single layer instead, its settings kept.
            config = container.get("Config") or {}
            values = dict(entry.partition("=")[::2] for entry in config.get("Env") or ())
            values.update(entry.partition("=")[::2] for entry in env)
            labels = {**(config.get("Labels") or {}), **conf_labels}
            changes = [f"ENV {name}={json.dumps(value)}" for name, value in values.items()]
            changes += [f"LABEL {json.dumps(name)}={json.dumps(value)}" for name, value in labels.items()]
            if config.get("WorkingDir"):
                changes.append(f"WORKDIR {config['WorkingDir']}")
            if config.get("User"):
                changes.append(f"USER {config['User']}")
            for instruction in ("Entrypoint", "Cmd"):
                if config.get(instruction):
                    changes.append(f"{instruction.upper()} {json.dumps(config[instruction])}")
            frozen = (container.get("State") or {}).get("Status") == "running"
            if frozen:
                self._client.api.pause(container_id)
            try:
                stream = self._client.api.export(container_id, chunk_size=1 << 20)
                result = self._client.api.import_image_from_data(
                    stream, repository=repository, tag=tag, changes=changes
                )
            finally:
                if frozen:
                    self._client.api.unpause(container_id)
            image_id = json.loads(result)["status"] if isinstance(result, str) else result["status"]
            return _image_info(self._client.api.inspect_image(image_id))

        return await self._call(commit)

    async def inspect_image(self, image: str) -> ImageInfo | None:
        def inspect() -> ImageInfo | None:
            try:
                return _image_info(self._client.api.inspect_image(image))
            except docker.errors.NotFound:
                return None

        return await self._call(inspect)

    async def list_images(self, labels: dict[str, str], *, dangling: bool = False) -> list[ImageInfo]:
        def listing() -> list[ImageInfo]:
            filters: dict[str, Any] = {"label": [f"{k}={v}" for k, v in labels.items()]}
            if dangling:
                filters["dangling"] = True
            found = self._client.api.images(filters=filters)
            return [
                ImageInfo(
                    id=i["Id"],
                    tags=tuple(t for t in i.get("RepoTags") or () if t != "<none>:<none>"),
                    size=int(i.get("Size") or 0),
                    layers=(),
                    labels=dict(i.get("Labels") or {}),
                    env=(),
                )
                for i in found
            ]

        return await self._call(listing)

    async def tag_image(self, image: str, ref: str) -> None:
        repository, _, tag = ref.rpartition(":")
        await self._call(self._client.api.tag, image, repository, tag, force=True)

    async def remove_image(self, image: str) -> None:
        def remove() -> None:
            try:
                # Never forced: a forced removal deletes an image a stopped container still runs
                # from, and that container could then not be committed any more.
                self._client.api.remove_image(image, force=False)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                # A container or a child image still needs it; the owner's clean-up retries later.
                if exc.status_code != 409:
                    raise

        await self._call(remove)

    async def save_image(self, image: str, sink: Callable[[bytes], object]) -> None:
        def save() -> None:
            for chunk in self._client.api.get_image(image, chunk_size=1 << 20):
                sink(chunk)

        await self._call(save)

    async def load_image(self, chunks: Iterable[bytes]) -> str:
        def load() -> str:
            loaded: str | None = None
            for message in self._client.api.load_image(chunks, quiet=True):
                if message.get("error"):
                    raise RuntimeFailure(f"the engine could not load the image: {message['error']}")
                text = str(message.get("stream", ""))
                if "Loaded image ID:" in text:
                    loaded = text.split("Loaded image ID:", 1)[1].strip()
                elif "Loaded image:" in text:
                    name = text.split("Loaded image:", 1)[1].strip()
                    loaded = self._client.api.inspect_image(name)["Id"]
            if loaded is None:
                raise RuntimeFailure("the engine loaded the archive but named no image")
            return loaded

        return await self._call(load)

    async def changed_paths(self, container_id: str) -> list[PathChange]:
        def diff() -> list[PathChange]:
            return [
                PathChange(path=c["Path"], kind=_CHANGE_KINDS.get(c["Kind"], "modified"))
                for c in self._client.api.diff(container_id) or ()
            ]

        return await self._call(diff)

    async def create_stopped(self, image: str) -> str:
        def create() -> str:
            container = self._client.api.create_container(
                image,
                entrypoint=["/bin/true"],
                command=[],
                network_disabled=True,
                # Ours, so reconciliation removes one a crash left behind; no sandbox id, so
                # nothing mistakes it for a sandbox.
                labels={LABEL_MANAGED: "true", LABEL_INSTANCE: self._instance_id},
            )
            return container["Id"]

        return await self._call(create)

    async def read_archive(self, container_id: str, path: str, consume: Callable[[BinaryIO], T]) -> T:
        def read() -> T:
            try:
                if path == "/":
                    # The whole filesystem: export streams it faster than the archive endpoint.
                    stream = self._client.api.export(container_id, chunk_size=1 << 20)
                else:
                    stream, _ = self._client.api.get_archive(container_id, path, chunk_size=1 << 20)
            except docker.errors.NotFound:
                raise NotFound(f"{path} does not exist in that filesystem") from None
            reader = io.BufferedReader(ChunkReader(iter(stream)), buffer_size=1 << 20)
            try:
                return consume(reader)  # type: ignore[arg-type]
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()

        return await self._call(read)

    async def cpu_seconds(self, container_id: str) -> float | None:
        def read() -> float | None:
            # The cgroup's own counter when this host's cgroup tree is visible (a file read);
            # otherwise the engine's one-shot stats.
            for path, scale in (
                (f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage", 1e-9),
                (f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat", 1e-6),
                (f"/sys/fs/cgroup/docker/{container_id}/cpu.stat", 1e-6),
            ):
                try:
                    text = Path(path).read_text()
                except OSError:
                    continue
                if path.endswith("cpu.stat"):
                    fields = dict(line.split() for line in text.splitlines() if " " in line)
                    return int(fields["usage_usec"]) * scale if "usage_usec" in fields else None
                return int(text.strip()) * scale
            try:
                stats = self._client.api.stats(container_id, stream=False, one_shot=True)
            except docker.errors.NotFound:
                return None
            usage = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
            return usage * 1e-9 if usage is not None else None

        return await self._call(read)


def _network_info(attrs: dict[str, Any]) -> NetworkInfo:
    pool = ((attrs.get("IPAM") or {}).get("Config") or [{}])[0]
    return NetworkInfo(
        id=attrs["Id"],
        name=attrs["Name"],
        internal=bool(attrs.get("Internal")),
        subnet=pool.get("Subnet"),
        gateway=pool.get("Gateway"),
        options=dict(attrs.get("Options") or {}),
        labels=dict(attrs.get("Labels") or {}),
    )


def _info(attrs: dict[str, Any]) -> ContainerInfo:
    state = attrs.get("State") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    networks = ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).values()
    ip = next((n.get("IPAddress") for n in networks if n.get("IPAddress")), None)
    return ContainerInfo(
        id=attrs["Id"],
        sandbox_id=labels.get(LABEL_SANDBOX),
        status=state.get("Status", "unknown"),
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or None,
        ip=ip,
    )


# --- images: snapshots, hibernation, export --------------------------------------------------

# `docker diff` kinds, in the engine's numbering.
_CHANGE_KINDS = {0: "modified", 1: "added", 2: "deleted"}


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks, for tarfile to parse a stream from the engine."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _image_info(attrs: dict[str, Any]) -> ImageInfo:
    config = attrs.get("Config") or {}
    return ImageInfo(
        id=attrs["Id"],
        tags=tuple(attrs.get("RepoTags") or ()),
        size=int(attrs.get("Size") or 0),
        layers=tuple((attrs.get("RootFS") or {}).get("Layers") or ()),
        labels=dict(config.get("Labels") or {}),
        env=tuple(config.get("Env") or ()),
    )
