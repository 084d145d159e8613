"""The asyncio SDK: ``AsyncClient`` and ``AsyncSandbox``, the twins of ``_sync`` method for method.

Local disk work (building an upload's tar, extracting a download) runs in worker
threads so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Generator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from sandboxd.client import _requests as req
from sandboxd.client._body import AsyncData, Progress, acounted, async_body, directory, in_thread
from sandboxd.client._http import DEFAULT_TIMEOUT, AsyncHTTP
from sandboxd.client._local import Target, opened
from sandboxd.client._sse import SSEDecoder
from sandboxd.client._tar import extract_tar
from sandboxd.client._types import (
    ApiKey,
    AuditRecord,
    AuditVerification,
    Changes,
    EgressLog,
    EgressPolicy,
    ExecEvent,
    ExecResult,
    ExitEvent,
    FileInfo,
    LifecycleDefaults,
    LifecycleInfo,
    ProcessInfo,
    ProcessOutput,
    SandboxInfo,
    SecretInfo,
    SnapshotInfo,
    Tenant,
    exec_event,
)
from sandboxd.errors import NotFound, SandboxdError
from sandboxd.models import MkdirRequest, MoveRequest


class AsyncClient:
    """One sandboxd, reached as one API key; see ``Client`` for the arguments."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = AsyncHTTP(url, api_key, timeout=timeout, transport=transport)
        self.sandboxes = AsyncSandboxes(self)
        self.snapshots = AsyncSnapshots(self)
        self.secrets = AsyncSecrets(self._http)
        self.egress = AsyncTenantEgress(self._http)
        self.lifecycle = AsyncTenantLifecycle(self._http)
        self.tenants = AsyncTenants(self._http)
        self.keys = AsyncKeys(self._http)
        self.audit = AsyncAudit(self._http)

    @property
    def url(self) -> str:
        return self._http.url

    async def health(self) -> dict[str, Any]:
        return (await self._http.send("GET", "/v1/health")).json()

    async def close(self) -> None:
        await self._http.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class Opening:
    """A sandbox on its way: ``await`` it for the handle, or ``async with`` it to have it deleted on exit."""

    def __init__(self, opening: Awaitable[AsyncSandbox]) -> None:
        self._opening = opening
        self._sandbox: AsyncSandbox | None = None

    def __await__(self) -> Generator[Any, None, AsyncSandbox]:
        return self._opening.__await__()

    async def __aenter__(self) -> AsyncSandbox:
        self._sandbox = await self._opening
        return self._sandbox

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._sandbox is not None:
            await self._sandbox.__aexit__(exc_type, exc, tb)


class AsyncSandboxes:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._http = client._http

    def create(
        self,
        *,
        image: str | None = None,
        env: Mapping[str, str] | None = None,
        cpus: float | None = None,
        memory_mb: int | None = None,
        pids: int | None = None,
        nofile: int | None = None,
        disk_gb: int | None = None,
        labels: Mapping[str, str] | None = None,
        idle_timeout_s: int | None = None,
        max_lifetime_s: int | None = None,
        idle_action: str | None = None,
        on_wake: str | None = None,
        egress: Sequence[req.Rule] | None = None,
        secrets: Sequence[str] | None = None,
        keep: bool = False,
    ) -> Opening:
        """Create a sandbox and wait until it runs: ``await`` it, or ``async with`` it.

        In ``async with`` the sandbox is deleted on exit unless ``keep`` is true.

        Raises:
            InvalidRequest: a limit or label the daemon refuses (the message says which).
            ImageNotFound: ``image`` is not present on the daemon's engine.
        """
        body = req.create_body(
            image=image,
            env=dict(env) if env is not None else None,
            cpus=cpus,
            memory_mb=memory_mb,
            pids=pids,
            nofile=nofile,
            disk_gb=disk_gb,
            labels=dict(labels) if labels is not None else None,
            idle_timeout_s=idle_timeout_s,
            max_lifetime_s=max_lifetime_s,
            idle_action=idle_action,
            on_wake=on_wake,
            egress=egress,
            secrets=list(secrets) if secrets is not None else None,
        )
        return Opening(self._create(body, keep))

    async def _create(self, body: dict[str, Any], keep: bool) -> AsyncSandbox:
        response = await self._http.send("POST", "/v1/sandboxes", json=body, timeout=req.exec_timeout(120))
        return AsyncSandbox(self._client, SandboxInfo.model_validate(response.json()), keep=keep)

    async def list(
        self, *, state: str | None = None, labels: Mapping[str, str] | None = None
    ) -> builtins.list[AsyncSandbox]:
        response = await self._http.send("GET", "/v1/sandboxes", params=req.list_params(state, labels))
        return [
            AsyncSandbox(self._client, SandboxInfo.model_validate(item), keep=True)
            for item in response.json()["sandboxes"]
        ]

    async def get(self, sandbox_id: str, *, keep: bool = True) -> AsyncSandbox:
        """Raises NotFound if this tenant has no such sandbox."""
        return AsyncSandbox(self._client, await _fetch(self._http, sandbox_id), keep=keep)


async def _fetch(http: AsyncHTTP, sandbox_id: str) -> SandboxInfo:
    response = await http.send("GET", f"/v1/sandboxes/{req.segment(sandbox_id)}")
    return SandboxInfo.model_validate(response.json())


class AsyncSandbox:
    """A handle on one sandbox; see ``Sandbox``."""

    def __init__(
        self, client: AsyncClient, info: SandboxInfo, *, keep: bool = False, owns_client: bool = False
    ) -> None:
        self.client = client
        self.info = info
        self.keep = keep
        self._owns_client = owns_client
        self._base = f"/v1/sandboxes/{req.segment(info.id)}"
        self.processes = AsyncProcesses(client._http, self._base)
        self.files = AsyncFiles(client._http, self._base)
        self.lifecycle = AsyncSandboxLifecycle(client._http, self._base)
        self.egress = AsyncSandboxEgress(client._http, self._base)

    @classmethod
    def create(cls, *, client: AsyncClient | None = None, keep: bool = False, **spec: Any) -> Opening:
        """``client.sandboxes.create(**spec)``; without a client, one from the environment, closed with the sandbox."""
        if client is not None:
            return client.sandboxes.create(keep=keep, **spec)
        return Opening(_owning(lambda c: c.sandboxes.create(keep=keep, **spec)))

    @classmethod
    async def connect(cls, sandbox_id: str, *, client: AsyncClient | None = None, keep: bool = True) -> AsyncSandbox:
        """Raises NotFound if this tenant has no such sandbox."""
        if client is not None:
            return await client.sandboxes.get(sandbox_id, keep=keep)
        return await _owning(lambda c: c.sandboxes.get(sandbox_id, keep=keep))

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def state(self) -> str:
        return self.info.state

    def __repr__(self) -> str:
        return f"<AsyncSandbox {self.id} {self.state}>"

    async def refresh(self) -> Self:
        self.info = await _fetch(self.client._http, self.id)
        return self

    async def exec(
        self,
        cmd: req.Command,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        """Run a command to its end; see ``Sandbox.exec``."""
        body = req.exec_body(cmd, cwd=cwd, env=env, stdin=stdin, timeout=timeout, max_output_bytes=max_output_bytes)
        response = await self.client._http.send(
            "POST", f"{self._base}/exec", json=body, timeout=req.exec_timeout(timeout)
        )
        return ExecResult.model_validate(response.json())

    async def exec_stream(
        self,
        cmd: req.Command,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
    ) -> AsyncIterator[ExecEvent]:
        """Run a command, yielding output events as it writes and an ``ExitEvent`` last; see ``Sandbox.exec_stream``."""
        body = req.exec_body(
            cmd,
            cwd=cwd,
            env=env,
            stdin=stdin,
            timeout=timeout,
            max_output_bytes=max_output_bytes,
            encoding="base64",
        )
        http = self.client._http
        response = await http.send(
            "POST", f"{self._base}/exec/stream", json=body, timeout=req.exec_timeout(timeout), stream=True
        )
        decoder = SSEDecoder()
        try:
            async for chunk in http.iter_bytes(response):
                for sse in decoder.feed(chunk):
                    event = exec_event(sse.event, sse.data)
                    if event is not None:
                        yield event
                    if isinstance(event, ExitEvent):
                        return
        finally:
            await response.aclose()
        raise SandboxdError("the output stream ended before the command did; its result is unknown")

    # --- snapshots and suspension ---------------------------------------------------------------

    async def snapshot(self, *, name: str | None = None, labels: Mapping[str, str] | None = None) -> AsyncSnapshot:
        """Save the filesystem as a snapshot; see ``Sandbox.snapshot``."""
        body = req.snapshot_body(name, labels)
        response = await self.client._http.send(
            "POST", f"{self._base}/snapshots", json=body, timeout=req.SNAPSHOT_TIMEOUT
        )
        return AsyncSnapshot(self.client, SnapshotInfo.model_validate(response.json()))

    async def fork(
        self,
        n: int = 1,
        *,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> builtins.list[AsyncSandbox]:
        """Snapshot this sandbox, then fork the snapshot ``n`` times; see ``Sandbox.fork``."""
        req.fork_body(n, labels, env)
        snapshot = await self.snapshot(name=name or f"fork of {self.id}")
        return await snapshot.fork(n, labels=labels, env=env)

    async def restore(self, snapshot: AsyncSnapshot | str) -> Self:
        """Roll the filesystem back to ``snapshot``; see ``Sandbox.restore``."""
        snapshot_id = snapshot.id if isinstance(snapshot, AsyncSnapshot) else snapshot
        response = await self.client._http.send(
            "POST", f"{self._base}/restore", json={"snapshot_id": snapshot_id}, timeout=req.SNAPSHOT_TIMEOUT
        )
        self.info = SandboxInfo.model_validate(response.json())
        return self

    async def pause(self) -> Self:
        return await self._transition("pause")

    async def resume(self) -> Self:
        return await self._transition("resume")

    async def hibernate(self) -> Self:
        return await self._transition("hibernate")

    async def keepalive(self) -> LifecycleInfo:
        response = await self.client._http.send("POST", f"{self._base}/keepalive")
        return LifecycleInfo.model_validate(response.json())

    async def _transition(self, action: str) -> Self:
        response = await self.client._http.send("POST", f"{self._base}/{action}", timeout=req.SNAPSHOT_TIMEOUT)
        self.info = SandboxInfo.model_validate(response.json())
        return self

    async def changes(
        self, *, since: AsyncSnapshot | str | None = None, path: str = "/", diff: bool = False
    ) -> Changes:
        """What changed since a snapshot; see ``Sandbox.changes``."""
        since_id = since.id if isinstance(since, AsyncSnapshot) else since
        response = await self.client._http.send(
            "GET",
            f"{self._base}/changes",
            params=req.changes_params(path, diff, since=since_id),
            timeout=req.SNAPSHOT_TIMEOUT,
        )
        return Changes.model_validate(response.json())

    async def delete(self) -> None:
        """Delete the sandbox and everything in it; one already gone is not an error."""
        with contextlib.suppress(NotFound):
            await self.client._http.send("DELETE", self._base, timeout=req.exec_timeout(60))

    async def close(self) -> None:
        if self._owns_client:
            await self.client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if not self.keep:
                await self.delete()
        finally:
            await self.close()


async def _owning(open_with: Any) -> AsyncSandbox:
    """Open a sandbox with a client of its own (from the environment), closed with it."""
    client = AsyncClient()
    try:
        sandbox: AsyncSandbox = await open_with(client)
    except BaseException:
        await client.close()
        raise
    sandbox._owns_client = True
    return sandbox


class AsyncProcesses:
    """Background processes of one sandbox; see ``Processes``."""

    def __init__(self, http: AsyncHTTP, base: str) -> None:
        self._http = http
        self._base = f"{base}/processes"

    def _path(self, process_id: str, suffix: str = "") -> str:
        return f"{self._base}/{req.segment(process_id)}{suffix}"

    async def start(
        self,
        cmd: req.Command,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> ProcessInfo:
        body = req.process_body(cmd, cwd=cwd, env=env, name=name)
        return ProcessInfo.from_wire((await self._http.send("POST", self._base, json=body)).json())

    async def list(self) -> builtins.list[ProcessInfo]:
        return [ProcessInfo.from_wire(p) for p in (await self._http.send("GET", self._base)).json()["processes"]]

    async def get(self, process_id: str) -> ProcessInfo:
        return ProcessInfo.from_wire((await self._http.send("GET", self._path(process_id))).json())

    async def output(self, process_id: str, *, stdout_offset: int = 0, stderr_offset: int = 0) -> ProcessOutput:
        params = {"stdout_offset": stdout_offset, "stderr_offset": stderr_offset}
        response = await self._http.send("GET", self._path(process_id, "/output"), params=params)
        return ProcessOutput.from_wire(response.json())

    async def write_stdin(self, process_id: str, data: bytes | str, *, eof: bool = False) -> None:
        content = data.encode() if isinstance(data, str) else bytes(data)
        params = {"eof": "true"} if eof else None
        await self._http.send("POST", self._path(process_id, "/stdin"), content=content, params=params)

    async def signal(self, process_id: str, signal: str | int = "TERM") -> ProcessInfo:
        response = await self._http.send("POST", self._path(process_id, "/signal"), json={"signal": signal})
        return ProcessInfo.from_wire(response.json())

    async def kill(self, process_id: str) -> ProcessInfo:
        return await self.signal(process_id, "KILL")

    async def wait(self, process_id: str, timeout: float = 30.0) -> ProcessInfo:
        response = await self._http.send(
            "POST",
            self._path(process_id, "/wait"),
            params={"timeout": timeout},
            timeout=req.exec_timeout(timeout),
        )
        return ProcessInfo.from_wire(response.json())

    async def forget(self, process_id: str) -> None:
        await self._http.send("DELETE", self._path(process_id))


class AsyncFiles:
    """The filesystem of one sandbox; see ``Files``."""

    def __init__(self, http: AsyncHTTP, base: str) -> None:
        self._http = http
        self._base = base

    async def read(self, path: str) -> bytes:
        return (await self._http.send("GET", f"{self._base}/files/content", params={"path": path})).content

    async def read_stream(
        self, path: str, *, chunk_size: int | None = None, progress: Progress | None = None
    ) -> AsyncIterator[bytes]:
        response = await self._http.send("GET", f"{self._base}/files/content", params={"path": path}, stream=True)
        try:
            async for chunk in acounted(self._http.iter_bytes(response, chunk_size), progress):
                yield chunk
        finally:
            await response.aclose()

    async def write(
        self, path: str, data: AsyncData, *, mode: int | str | None = None, progress: Progress | None = None
    ) -> FileInfo:
        """As ``Files.write``; ``data`` may also be an async iterable of byte chunks."""
        content, replay = async_body(data, progress)
        params = {"path": path}
        if (octal := req.mode_param(mode)) is not None:
            params["mode"] = octal
        response = await self._http.send(
            "PUT",
            f"{self._base}/files/content",
            params=params,
            content=content,
            replay=replay,
            timeout=req.TRANSFER_TIMEOUT,
        )
        return FileInfo.from_wire(response.json())

    async def list(self, path: str = req.DEFAULT_DIR) -> builtins.list[FileInfo]:
        response = await self._http.send("GET", f"{self._base}/files", params={"path": path})
        return [FileInfo.from_wire(e) for e in response.json()["entries"]]

    async def stat(self, path: str) -> FileInfo:
        response = await self._http.send("GET", f"{self._base}/files/stat", params={"path": path})
        return FileInfo.from_wire(response.json())

    async def exists(self, path: str) -> bool:
        try:
            await self.stat(path)
        except NotFound:
            return False
        return True

    async def mkdir(self, path: str, *, parents: bool = True, mode: int | str = "0755") -> FileInfo:
        body = req.build(MkdirRequest, path=path, parents=parents, mode=req.mode_param(mode))
        return FileInfo.from_wire((await self._http.send("POST", f"{self._base}/files/mkdir", json=body)).json())

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        params = {"path": path, "recursive": "true" if recursive else "false"}
        await self._http.send("DELETE", f"{self._base}/files", params=params)

    async def move(self, src: str, dst: str, *, overwrite: bool = False) -> FileInfo:
        body = req.build(MoveRequest, src=src, dst=dst, overwrite=overwrite)
        return FileInfo.from_wire((await self._http.send("POST", f"{self._base}/files/move", json=body)).json())

    async def upload_dir(self, local_dir: str | Path, remote_dir: str, *, progress: Progress | None = None) -> None:
        """As ``Files.upload_dir``; the tar is built in a worker thread."""
        local = Path(local_dir)
        if not local.is_dir():
            raise NotADirectoryError(f"{local} is not a directory")
        make = directory(local)
        await self._http.send(
            "PUT",
            f"{self._base}/archive",
            params={"path": remote_dir},
            content=acounted(in_thread(make()), progress),
            replay=lambda: acounted(in_thread(make()), progress),
            timeout=req.TRANSFER_TIMEOUT,
        )

    async def download_dir(
        self, remote_dir: str, local_dir: str | Path, *, progress: Progress | None = None
    ) -> builtins.list[str]:
        """As ``Files.download_dir``. The archive is spooled to a temporary file, then extracted in a thread."""
        response = await self._http.send(
            "GET", f"{self._base}/archive", params={"path": remote_dir}, stream=True, timeout=req.TRANSFER_TIMEOUT
        )
        with tempfile.TemporaryFile() as spool:
            try:
                async for chunk in acounted(self._http.iter_bytes(response), progress):
                    await asyncio.to_thread(spool.write, chunk)
            finally:
                await response.aclose()
            spool.seek(0)
            return await asyncio.to_thread(extract_tar, spool, local_dir)


class AsyncSandboxLifecycle:
    """A sandbox's idle policy; see ``SandboxLifecycle``."""

    def __init__(self, http: AsyncHTTP, base: str) -> None:
        self._http = http
        self._path = f"{base}/lifecycle"

    async def get(self) -> LifecycleInfo:
        return LifecycleInfo.model_validate((await self._http.send("GET", self._path)).json())

    async def set(
        self,
        *,
        idle_timeout_s: int | None | req.Keep = req.KEEP,
        idle_action: str | None | req.Keep = req.KEEP,
        max_lifetime_s: int | None | req.Keep = req.KEEP,
        on_wake: str | None | req.Keep = req.KEEP,
    ) -> LifecycleInfo:
        body = req.lifecycle_body(
            idle_timeout_s=idle_timeout_s, idle_action=idle_action, max_lifetime_s=max_lifetime_s, on_wake=on_wake
        )
        return LifecycleInfo.model_validate((await self._http.send("PATCH", self._path, json=body)).json())


class AsyncSandboxEgress:
    """A sandbox's egress policy and log; see ``SandboxEgress``."""

    def __init__(self, http: AsyncHTTP, base: str) -> None:
        self._http = http
        self._policy = f"{base}/egress/policy"
        self._log = f"{base}/egress/log"

    async def policy(self) -> EgressPolicy:
        return EgressPolicy.model_validate((await self._http.send("GET", self._policy)).json())

    async def set_policy(
        self,
        rules: Sequence[req.Rule] | None = None,
        *,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
    ) -> EgressPolicy:
        body = req.policy_body(rules, allow, deny)
        return EgressPolicy.model_validate((await self._http.send("PUT", self._policy, json=body)).json())

    async def clear_policy(self) -> EgressPolicy:
        return EgressPolicy.model_validate((await self._http.send("DELETE", self._policy)).json())

    async def log(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        blocked: bool | None = None,
        host: str | None = None,
        since: datetime | str | None = None,
    ) -> EgressLog:
        params = req.egress_log_params(limit=limit, before=before, blocked=blocked, host=host, since=since)
        return EgressLog.model_validate((await self._http.send("GET", self._log, params=params)).json())


class AsyncSnapshots:
    """This tenant's snapshots; see ``Snapshots``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._http = client._http

    async def list(
        self, *, sandbox_id: str | None = None, labels: Mapping[str, str] | None = None
    ) -> builtins.list[AsyncSnapshot]:
        response = await self._http.send("GET", "/v1/snapshots", params=req.snapshot_list_params(sandbox_id, labels))
        return [AsyncSnapshot(self._client, SnapshotInfo.model_validate(s)) for s in response.json()["snapshots"]]

    async def get(self, snapshot_id: str) -> AsyncSnapshot:
        return AsyncSnapshot(self._client, await _fetch_snapshot(self._http, snapshot_id))

    async def delete(self, snapshot_id: str, *, force: bool = False) -> None:
        params = {"force": "true"} if force else None
        await self._http.send("DELETE", f"/v1/snapshots/{req.segment(snapshot_id)}", params=params)

    async def fork(
        self,
        snapshot_id: str,
        n: int = 1,
        *,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> builtins.list[AsyncSandbox]:
        body = req.fork_body(n, labels, env)
        response = await self._http.send(
            "POST", f"/v1/snapshots/{req.segment(snapshot_id)}/fork", json=body, timeout=req.SNAPSHOT_TIMEOUT
        )
        return [AsyncSandbox(self._client, SandboxInfo.model_validate(s)) for s in response.json()["sandboxes"]]

    async def changes(self, base: str, to: str, *, path: str = "/", diff: bool = False) -> Changes:
        response = await self._http.send(
            "GET",
            f"/v1/snapshots/{req.segment(base)}/changes",
            params=req.changes_params(path, diff, to=to),
            timeout=req.SNAPSHOT_TIMEOUT,
        )
        return Changes.model_validate(response.json())

    async def export(self, snapshot_id: str, target: Target, *, progress: Progress | None = None) -> int:
        """As ``Snapshots.export``; the file is written from a worker thread."""
        response = await self._http.send(
            "GET", f"/v1/snapshots/{req.segment(snapshot_id)}/export", stream=True, timeout=req.TRANSFER_TIMEOUT
        )
        written = 0
        try:
            with opened(target) as f:
                async for chunk in acounted(self._http.iter_bytes(response), progress):
                    await asyncio.to_thread(f.write, chunk)
                    written += len(chunk)
        finally:
            await response.aclose()
        return written

    async def import_(self, source: AsyncData, *, progress: Progress | None = None) -> AsyncSnapshot:
        """As ``Snapshots.import_`` (a str is a file name); ``source`` may also be an async iterable of chunks."""
        content, _ = async_body(Path(source) if isinstance(source, str) else source, progress)
        response = await self._http.send("POST", "/v1/snapshots/import", content=content, timeout=req.TRANSFER_TIMEOUT)
        return AsyncSnapshot(self._client, SnapshotInfo.model_validate(response.json()))


async def _fetch_snapshot(http: AsyncHTTP, snapshot_id: str) -> SnapshotInfo:
    response = await http.send("GET", f"/v1/snapshots/{req.segment(snapshot_id)}")
    return SnapshotInfo.model_validate(response.json())


class AsyncSnapshot:
    """A handle on one snapshot; see ``Snapshot``."""

    def __init__(self, client: AsyncClient, info: SnapshotInfo) -> None:
        self.client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    def __repr__(self) -> str:
        return f"<AsyncSnapshot {self.id} {self.name!r}>"

    async def refresh(self) -> Self:
        self.info = await _fetch_snapshot(self.client._http, self.id)
        return self

    async def fork(
        self, n: int = 1, *, labels: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
    ) -> builtins.list[AsyncSandbox]:
        return await self.client.snapshots.fork(self.id, n, labels=labels, env=env)

    async def changes(self, to: AsyncSnapshot | str, *, path: str = "/", diff: bool = False) -> Changes:
        target = to.id if isinstance(to, AsyncSnapshot) else to
        return await self.client.snapshots.changes(self.id, target, path=path, diff=diff)

    async def export(self, target: Target, *, progress: Progress | None = None) -> int:
        return await self.client.snapshots.export(self.id, target, progress=progress)

    async def delete(self, *, force: bool = False) -> None:
        await self.client.snapshots.delete(self.id, force=force)


class AsyncSecrets:
    """Stored credentials; see ``Secrets``."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def put(
        self,
        name: str,
        value: str,
        *,
        hosts: Sequence[str],
        header: str | None = None,
        basic: str | None = None,
        query: str | None = None,
        allow_in_body: bool = False,
        allow_in_query: bool = False,
    ) -> SecretInfo:
        inject = req.injection(header, basic, query)
        body = req.secret_body(value, hosts, inject, allow_in_body, allow_in_query)
        response = await self._http.send("PUT", f"/v1/secrets/{req.segment(name)}", json=body)
        return SecretInfo.model_validate(response.json())

    async def list(self) -> builtins.list[SecretInfo]:
        return [SecretInfo.model_validate(s) for s in (await self._http.send("GET", "/v1/secrets")).json()["secrets"]]

    async def get(self, name: str) -> SecretInfo:
        return SecretInfo.model_validate((await self._http.send("GET", f"/v1/secrets/{req.segment(name)}")).json())

    async def delete(self, name: str) -> None:
        await self._http.send("DELETE", f"/v1/secrets/{req.segment(name)}")


class AsyncTenantEgress:
    """The tenant's default egress policy; see ``TenantEgress``."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def policy(self, *, tenant_id: str | None = None) -> EgressPolicy:
        params = {"tenant_id": tenant_id} if tenant_id else None
        return EgressPolicy.model_validate((await self._http.send("GET", "/v1/egress/policy", params=params)).json())

    async def set_policy(
        self,
        rules: Sequence[req.Rule] | None = None,
        *,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
        tenant_id: str | None = None,
    ) -> EgressPolicy:
        body = req.policy_body(rules, allow, deny)
        params = {"tenant_id": tenant_id} if tenant_id else None
        response = await self._http.send("PUT", "/v1/egress/policy", json=body, params=params)
        return EgressPolicy.model_validate(response.json())


class AsyncTenantLifecycle:
    """A tenant's default idle policy; see ``TenantLifecycle``."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def defaults(self, *, tenant_id: str | None = None) -> LifecycleDefaults:
        params = {"tenant_id": tenant_id} if tenant_id else None
        response = await self._http.send("GET", "/v1/lifecycle/defaults", params=params)
        return LifecycleDefaults.model_validate(response.json())

    async def set_defaults(
        self,
        tenant_id: str,
        *,
        idle_timeout_s: int | None = None,
        idle_action: str | None = None,
        max_lifetime_s: int | None = None,
    ) -> LifecycleDefaults:
        body = req.lifecycle_defaults_body(
            idle_timeout_s=idle_timeout_s, idle_action=idle_action, max_lifetime_s=max_lifetime_s
        )
        path = f"/v1/tenants/{req.segment(tenant_id)}/lifecycle"
        return LifecycleDefaults.model_validate((await self._http.send("PUT", path, json=body)).json())


class AsyncTenants:
    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def create(self, name: str) -> Tenant:
        return Tenant.from_wire((await self._http.send("POST", "/v1/tenants", json={"name": name})).json())

    async def list(self) -> builtins.list[Tenant]:
        return [Tenant.from_wire(t) for t in (await self._http.send("GET", "/v1/tenants")).json()["tenants"]]


class AsyncKeys:
    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def create(self, tenant_id: str, *, name: str = "", admin: bool = False) -> ApiKey:
        path = f"/v1/tenants/{req.segment(tenant_id)}/keys"
        return ApiKey.from_wire((await self._http.send("POST", path, json={"name": name, "admin": admin})).json())

    async def list(self, *, tenant_id: str | None = None) -> builtins.list[ApiKey]:
        params = {"tenant_id": tenant_id} if tenant_id else None
        return [ApiKey.from_wire(k) for k in (await self._http.send("GET", "/v1/keys", params=params)).json()["keys"]]

    async def revoke(self, key_id: str) -> None:
        await self._http.send("DELETE", f"/v1/keys/{req.segment(key_id)}")


class AsyncAudit:
    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def query(
        self,
        *,
        sandbox_id: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditRecord]:
        params = req.audit_params(
            sandbox_id=sandbox_id, action=action, since=since, until=until, after_seq=after_seq, limit=limit
        )
        response = await self._http.send("GET", "/v1/audit", params=params)
        return [AuditRecord.from_wire(r) for r in response.json()["records"]]

    async def verify(self) -> AuditVerification:
        return AuditVerification.from_wire((await self._http.send("GET", "/v1/audit/verify")).json())
