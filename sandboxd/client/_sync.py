"""The blocking SDK: ``Client``, ``Sandbox`` and the namespaces hanging off them.

``_async`` is its twin, method for method; what the two share (request bodies,
answer types, SSE and tar handling, errors and retries) lives in the modules both
import, so each twin is only the calls themselves.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from sandboxd.client import _requests as req
from sandboxd.client._body import Data, Progress, counted, directory, sync_body
from sandboxd.client._http import DEFAULT_TIMEOUT, SyncHTTP
from sandboxd.client._local import Target, opened
from sandboxd.client._sse import SSEDecoder
from sandboxd.client._tar import IteratorReader, extract_tar
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


class Client:
    """One sandboxd, reached as one API key.

    ``url`` and ``api_key`` default to SANDBOXD_URL (else http://127.0.0.1:8080)
    and SANDBOXD_API_KEY. ``transport`` is httpx's, for tests (``httpx.MockTransport``).
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = SyncHTTP(url, api_key, timeout=timeout, transport=transport)
        self.sandboxes = Sandboxes(self)
        self.snapshots = Snapshots(self)
        self.secrets = Secrets(self._http)
        self.egress = TenantEgress(self._http)
        self.lifecycle = TenantLifecycle(self._http)
        self.tenants = Tenants(self._http)
        self.keys = Keys(self._http)
        self.audit = Audit(self._http)

    @property
    def url(self) -> str:
        return self._http.url

    def health(self) -> dict[str, Any]:
        """The daemon's health answer (needs no key)."""
        return self._http.send("GET", "/v1/health").json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Sandboxes:
    def __init__(self, client: Client) -> None:
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
    ) -> Sandbox:
        """Create a sandbox and wait until it runs.

        Used as a context manager, the sandbox is deleted on exit unless ``keep`` is true.

        ``egress`` gives the sandbox egress rules of its own ("pypi.org" allows a host,
        or full ``EgressRule``s); left out, it follows its tenant's default policy.
        ``secrets`` names stored secrets it may use: each becomes an environment variable
        holding a placeholder, which the egress proxy swaps for the value on the way out.
        ``idle_action`` ("pause", "hibernate", "delete") is what ``idle_timeout_s`` does;
        ``on_wake`` a shell command started each time the sandbox wakes.

        Raises:
            InvalidRequest: a limit, label, rule or secret name the daemon refuses (the message says which).
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
        response = self._http.send("POST", "/v1/sandboxes", json=body, timeout=req.exec_timeout(120))
        return Sandbox(self._client, SandboxInfo.model_validate(response.json()), keep=keep)

    def list(self, *, state: str | None = None, labels: Mapping[str, str] | None = None) -> builtins.list[Sandbox]:
        """This tenant's sandboxes, optionally only those in ``state`` carrying all of ``labels``."""
        response = self._http.send("GET", "/v1/sandboxes", params=req.list_params(state, labels))
        return [
            Sandbox(self._client, SandboxInfo.model_validate(item), keep=True) for item in response.json()["sandboxes"]
        ]

    def get(self, sandbox_id: str, *, keep: bool = True) -> Sandbox:
        """An existing sandbox. Used as a context manager it is kept unless ``keep=False``.

        Raises:
            NotFound: no such sandbox for this tenant.
        """
        return Sandbox(self._client, _fetch(self._http, sandbox_id), keep=keep)


def _fetch(http: SyncHTTP, sandbox_id: str) -> SandboxInfo:
    response = http.send("GET", f"/v1/sandboxes/{req.segment(sandbox_id)}")
    return SandboxInfo.model_validate(response.json())


class Sandbox:
    """A handle on one sandbox: run commands, move files, snapshot, suspend, delete it.

    The handle holds no connection of its own beyond its client's; ``info`` is the
    last description fetched, brought up to date by ``refresh()`` and by every call
    that changes the sandbox's state (``pause``, ``restore``, ...).
    """

    def __init__(self, client: Client, info: SandboxInfo, *, keep: bool = False, owns_client: bool = False) -> None:
        self.client = client
        self.info = info
        self.keep = keep
        self._owns_client = owns_client
        self._base = f"/v1/sandboxes/{req.segment(info.id)}"
        self.processes = Processes(client._http, self._base)
        self.files = Files(client._http, self._base)
        self.lifecycle = SandboxLifecycle(client._http, self._base)
        self.egress = SandboxEgress(client._http, self._base)

    @classmethod
    def create(cls, *, client: Client | None = None, keep: bool = False, **spec: Any) -> Sandbox:
        """``client.sandboxes.create(**spec)``; without a client, one from the environment, closed with the sandbox."""
        if client is not None:
            return client.sandboxes.create(keep=keep, **spec)
        client = Client()
        try:
            sandbox = client.sandboxes.create(keep=keep, **spec)
        except BaseException:
            client.close()
            raise
        sandbox._owns_client = True
        return sandbox

    @classmethod
    def connect(cls, sandbox_id: str, *, client: Client | None = None, keep: bool = True) -> Sandbox:
        """A handle on an existing sandbox; without a client, one from the environment.

        Raises:
            NotFound: no such sandbox for this tenant.
        """
        if client is not None:
            return client.sandboxes.get(sandbox_id, keep=keep)
        client = Client()
        try:
            sandbox = client.sandboxes.get(sandbox_id, keep=keep)
        except BaseException:
            client.close()
            raise
        sandbox._owns_client = True
        return sandbox

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def state(self) -> str:
        return self.info.state

    def __repr__(self) -> str:
        return f"<Sandbox {self.id} {self.state}>"

    def refresh(self) -> Self:
        self.info = _fetch(self.client._http, self.id)
        return self

    def exec(
        self,
        cmd: req.Command,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        """Run a command to its end. A str runs through bash; a list is an argv.

        A command that fails is not an exception: look at ``exit_code`` and ``timed_out``.

        Raises:
            InvalidRequest: bad arguments (e.g. a timeout over the daemon's limit).
            NotFound: the sandbox is gone.
            SandboxUnavailable: the sandbox does not answer.
        """
        body = req.exec_body(cmd, cwd=cwd, env=env, stdin=stdin, timeout=timeout, max_output_bytes=max_output_bytes)
        response = self.client._http.send("POST", f"{self._base}/exec", json=body, timeout=req.exec_timeout(timeout))
        return ExecResult.model_validate(response.json())

    def exec_stream(
        self,
        cmd: req.Command,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
    ) -> Iterator[ExecEvent]:
        """Run a command, yielding ``OutputEvent``s as it writes and one ``ExitEvent`` at the end.

        Nothing is sent until the first event is asked for. Stopping early closes
        the stream; the command itself runs on to its timeout.

        Raises:
            SandboxdError: as ``exec``, or if the stream breaks before the command ends.
        """
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
        response = http.send(
            "POST", f"{self._base}/exec/stream", json=body, timeout=req.exec_timeout(timeout), stream=True
        )
        decoder = SSEDecoder()
        try:
            for chunk in http.iter_bytes(response):
                for sse in decoder.feed(chunk):
                    event = exec_event(sse.event, sse.data)
                    if event is not None:
                        yield event
                    if isinstance(event, ExitEvent):
                        return
        finally:
            response.close()
        raise SandboxdError("the output stream ended before the command did; its result is unknown")

    # --- snapshots and suspension ---------------------------------------------------------------

    def snapshot(self, *, name: str | None = None, labels: Mapping[str, str] | None = None) -> Snapshot:
        """Save the sandbox's whole filesystem (not its processes) as a snapshot.

        The sandbox is frozen for the moment of the copy and runs on afterwards.

        Raises:
            Conflict: the sandbox is changing state (creating, waking, restoring...).
            InvalidRequest: a bad name or label.
        """
        body = req.snapshot_body(name, labels)
        response = self.client._http.send(
            "POST", f"{self._base}/snapshots", json=body, timeout=req.SNAPSHOT_TIMEOUT
        )
        return Snapshot(self.client, SnapshotInfo.model_validate(response.json()))

    def fork(
        self,
        n: int = 1,
        *,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> builtins.list[Sandbox]:
        """``n`` new sandboxes with copies of this one's filesystem, as it is now.

        The API forks from snapshots, not from live sandboxes: this takes a snapshot
        (``name``, default "fork of <id>") and forks that. The snapshot stays, since
        the forks are built on it; ``client.snapshots.list(sandbox_id=sbx.id)`` finds it.
        Each fork is a new sandbox: a context manager around one deletes it on exit.

        Raises:
            Conflict: as ``snapshot``.
            InvalidRequest: ``n`` outside 1..64, or a bad label.
        """
        req.fork_body(n, labels, env)  # refuse bad arguments before taking the snapshot
        return self.snapshot(name=name or f"fork of {self.id}").fork(n, labels=labels, env=env)

    def restore(self, snapshot: Snapshot | str) -> Self:
        """Roll the filesystem back to ``snapshot``: same sandbox id, processes restart.

        Raises:
            NotFound: no such snapshot for this tenant.
            Conflict: the sandbox is busy changing state, or the snapshot is not ready.
        """
        snapshot_id = snapshot.id if isinstance(snapshot, Snapshot) else snapshot
        response = self.client._http.send(
            "POST", f"{self._base}/restore", json={"snapshot_id": snapshot_id}, timeout=req.SNAPSHOT_TIMEOUT
        )
        self.info = SandboxInfo.model_validate(response.json())
        return self

    def pause(self) -> Self:
        """Freeze every process (memory kept, no CPU used); ``resume`` or any call wakes it.

        Raises:
            Conflict: the sandbox is not running.
        """
        return self._transition("pause")

    def resume(self) -> Self:
        """Wake the sandbox from a pause or from hibernation; one already running is left as it is."""
        return self._transition("resume")

    def hibernate(self) -> Self:
        """Save the filesystem and remove the container: no memory or CPU used until it wakes.

        Processes do not survive (they restart on wake, with ``on_wake`` if set); files do.

        Raises:
            Conflict: the sandbox is changing state.
        """
        return self._transition("hibernate")

    def keepalive(self) -> LifecycleInfo:
        """Restart the idle clock without waking the sandbox."""
        return LifecycleInfo.model_validate(self.client._http.send("POST", f"{self._base}/keepalive").json())

    def _transition(self, action: str) -> Self:
        response = self.client._http.send("POST", f"{self._base}/{action}", timeout=req.SNAPSHOT_TIMEOUT)
        self.info = SandboxInfo.model_validate(response.json())
        return self

    def changes(self, *, since: Snapshot | str | None = None, path: str = "/", diff: bool = False) -> Changes:
        """What changed in the filesystem since a snapshot (default: the latest one taken of this sandbox).

        ``path`` limits the comparison to one directory; ``diff`` adds a unified
        diff for each changed text file.

        Raises:
            InvalidRequest: no snapshot given and none taken of this sandbox.
            NotFound: no such snapshot for this tenant.
        """
        since_id = since.id if isinstance(since, Snapshot) else since
        response = self.client._http.send(
            "GET",
            f"{self._base}/changes",
            params=req.changes_params(path, diff, since=since_id),
            timeout=req.SNAPSHOT_TIMEOUT,
        )
        return Changes.model_validate(response.json())

    def delete(self) -> None:
        """Delete the sandbox and everything in it. Deleting one that is already gone is not an error."""
        with contextlib.suppress(NotFound):
            self.client._http.send("DELETE", self._base, timeout=req.exec_timeout(60))

    def close(self) -> None:
        """Release the client if this handle made it (``Sandbox.create``/``connect`` without one)."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if not self.keep:
                self.delete()
        finally:
            self.close()


class Processes:
    """Background processes of one sandbox: started, read, fed, signalled and waited on by id."""

    def __init__(self, http: SyncHTTP, base: str) -> None:
        self._http = http
        self._base = f"{base}/processes"

    def _path(self, process_id: str, suffix: str = "") -> str:
        return f"{self._base}/{req.segment(process_id)}{suffix}"

    def start(
        self,
        cmd: req.Command,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> ProcessInfo:
        """Start a command that outlives this call; its output is kept for ``output()``."""
        body = req.process_body(cmd, cwd=cwd, env=env, name=name)
        return ProcessInfo.from_wire(self._http.send("POST", self._base, json=body).json())

    def list(self) -> builtins.list[ProcessInfo]:
        return [ProcessInfo.from_wire(p) for p in self._http.send("GET", self._base).json()["processes"]]

    def get(self, process_id: str) -> ProcessInfo:
        return ProcessInfo.from_wire(self._http.send("GET", self._path(process_id)).json())

    def output(self, process_id: str, *, stdout_offset: int = 0, stderr_offset: int = 0) -> ProcessOutput:
        """Output from the given byte offsets on; the answer carries the offsets to pass next time."""
        params = {"stdout_offset": stdout_offset, "stderr_offset": stderr_offset}
        return ProcessOutput.from_wire(self._http.send("GET", self._path(process_id, "/output"), params=params).json())

    def write_stdin(self, process_id: str, data: bytes | str, *, eof: bool = False) -> None:
        """Feed the process's stdin; ``eof=True`` closes it after ``data``."""
        content = data.encode() if isinstance(data, str) else bytes(data)
        params = {"eof": "true"} if eof else None
        self._http.send("POST", self._path(process_id, "/stdin"), content=content, params=params)

    def signal(self, process_id: str, signal: str | int = "TERM") -> ProcessInfo:
        body = {"signal": signal}
        return ProcessInfo.from_wire(self._http.send("POST", self._path(process_id, "/signal"), json=body).json())

    def kill(self, process_id: str) -> ProcessInfo:
        """SIGKILL to the process and everything it spawned."""
        return self.signal(process_id, "KILL")

    def wait(self, process_id: str, timeout: float = 30.0) -> ProcessInfo:
        """Wait up to ``timeout`` seconds (at most 3600) for it to end; check ``state`` to see whether it did."""
        response = self._http.send(
            "POST",
            self._path(process_id, "/wait"),
            params={"timeout": timeout},
            timeout=req.exec_timeout(timeout),
        )
        return ProcessInfo.from_wire(response.json())

    def forget(self, process_id: str) -> None:
        """Drop an ended process and its kept output."""
        self._http.send("DELETE", self._path(process_id))


class Files:
    """The filesystem of one sandbox. Relative paths are relative to /workspace."""

    def __init__(self, http: SyncHTTP, base: str) -> None:
        self._http = http
        self._base = base

    def read(self, path: str) -> bytes:
        """The whole file; for large files prefer ``read_stream``.

        Raises:
            NotFound: no such file.
            IsADirectory: ``path`` is a directory.
            PermissionDenied: the sandbox user may not read it.
        """
        return self._http.send("GET", f"{self._base}/files/content", params={"path": path}).content

    def read_stream(
        self, path: str, *, chunk_size: int | None = None, progress: Progress | None = None
    ) -> Iterator[bytes]:
        """The file in chunks as they arrive; errors as ``read``, raised at the first chunk."""
        response = self._http.send("GET", f"{self._base}/files/content", params={"path": path}, stream=True)
        yield from counted(self._http.iter_bytes(response, chunk_size), progress)

    def write(
        self, path: str, data: Data, *, mode: int | str | None = None, progress: Progress | None = None
    ) -> FileInfo:
        """Write (or replace) a file, creating its parent directories.

        ``data`` is bytes, text (written as UTF-8), a local ``Path``, a binary file
        object or an iterable of byte chunks; files and iterables are streamed,
        never read whole.
        ``mode`` is 0o644 or "0644" style (default 0644). Retried on connection
        failures when the data can be sent again (bytes, text, paths, seekable files).

        Raises:
            PermissionDenied: the sandbox user may not write there.
            IsADirectory: ``path`` is a directory.
            PayloadTooLarge: over the daemon's upload limit.
        """
        content, replay = sync_body(data, progress)
        params = {"path": path}
        if (octal := req.mode_param(mode)) is not None:
            params["mode"] = octal
        response = self._http.send(
            "PUT",
            f"{self._base}/files/content",
            params=params,
            content=content,
            replay=replay,
            timeout=req.TRANSFER_TIMEOUT,
        )
        return FileInfo.from_wire(response.json())

    def list(self, path: str = req.DEFAULT_DIR) -> builtins.list[FileInfo]:
        response = self._http.send("GET", f"{self._base}/files", params={"path": path})
        return [FileInfo.from_wire(e) for e in response.json()["entries"]]

    def stat(self, path: str) -> FileInfo:
        return FileInfo.from_wire(self._http.send("GET", f"{self._base}/files/stat", params={"path": path}).json())

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except NotFound:
            return False
        return True

    def mkdir(self, path: str, *, parents: bool = True, mode: int | str = "0755") -> FileInfo:
        body = req.build(MkdirRequest, path=path, parents=parents, mode=req.mode_param(mode))
        return FileInfo.from_wire(self._http.send("POST", f"{self._base}/files/mkdir", json=body).json())

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file, an empty directory, or with ``recursive`` a whole tree.

        Raises:
            NotFound: nothing at ``path``.
            Conflict: a non-empty directory without ``recursive``.
        """
        params = {"path": path, "recursive": "true" if recursive else "false"}
        self._http.send("DELETE", f"{self._base}/files", params=params)

    def move(self, src: str, dst: str, *, overwrite: bool = False) -> FileInfo:
        body = req.build(MoveRequest, src=src, dst=dst, overwrite=overwrite)
        return FileInfo.from_wire(self._http.send("POST", f"{self._base}/files/move", json=body).json())

    def upload_dir(self, local_dir: str | Path, remote_dir: str, *, progress: Progress | None = None) -> None:
        """Copy the contents of ``local_dir`` into ``remote_dir`` (created if missing), as a tar built on the fly.

        Symlinks go as links; sockets, fifos and devices are left out.
        """
        local = Path(local_dir)
        if not local.is_dir():
            raise NotADirectoryError(f"{local} is not a directory")
        make = directory(local)
        self._http.send(
            "PUT",
            f"{self._base}/archive",
            params={"path": remote_dir},
            content=counted(make(), progress),
            replay=lambda: counted(make(), progress),
            timeout=req.TRANSFER_TIMEOUT,
        )

    def download_dir(
        self, remote_dir: str, local_dir: str | Path, *, progress: Progress | None = None
    ) -> builtins.list[str]:
        """Copy the contents of ``remote_dir`` into ``local_dir`` (created if missing).

        Extraction refuses anything that would land outside ``local_dir`` (absolute
        names, ``..``, links pointing out), device files and set-uid bits; such
        members are skipped and returned as "name: reason" lines.

        Raises:
            NotFound: no such directory.
            NotADirectory: ``remote_dir`` is a file (use ``read_stream``).
        """
        response = self._http.send(
            "GET", f"{self._base}/archive", params={"path": remote_dir}, stream=True, timeout=req.TRANSFER_TIMEOUT
        )
        try:
            return extract_tar(IteratorReader(counted(self._http.iter_bytes(response), progress)), local_dir)
        finally:
            response.close()


class SandboxLifecycle:
    """When a sandbox suspends itself: idle timeout, what idling does, its longest life, what runs on waking."""

    def __init__(self, http: SyncHTTP, base: str) -> None:
        self._http = http
        self._path = f"{base}/lifecycle"

    def get(self) -> LifecycleInfo:
        return LifecycleInfo.model_validate(self._http.send("GET", self._path).json())

    def set(
        self,
        *,
        idle_timeout_s: int | None | req.Keep = req.KEEP,
        idle_action: str | None | req.Keep = req.KEEP,
        max_lifetime_s: int | None | req.Keep = req.KEEP,
        on_wake: str | None | req.Keep = req.KEEP,
    ) -> LifecycleInfo:
        """Change the arguments given; None clears one (back to the tenant's or server's default).

        ``idle_action`` is "pause", "hibernate" or "delete".

        Raises:
            InvalidRequest: a value out of range.
        """
        body = req.lifecycle_body(
            idle_timeout_s=idle_timeout_s, idle_action=idle_action, max_lifetime_s=max_lifetime_s, on_wake=on_wake
        )
        return LifecycleInfo.model_validate(self._http.send("PATCH", self._path, json=body).json())


class SandboxEgress:
    """Where a sandbox may connect to, and what it did.

    Methods rather than a ``policy`` property: the async twin cannot await a property,
    and both twins have the same shape.
    """

    def __init__(self, http: SyncHTTP, base: str) -> None:
        self._http = http
        self._policy = f"{base}/egress/policy"
        self._log = f"{base}/egress/log"

    def policy(self) -> EgressPolicy:
        """The rules in force: the sandbox's own, else its tenant's default (``source`` says which)."""
        return EgressPolicy.model_validate(self._http.send("GET", self._policy).json())

    def set_policy(
        self,
        rules: Sequence[req.Rule] | None = None,
        *,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
    ) -> EgressPolicy:
        """Replace the sandbox's rules; the proxy applies them within a second.

        ``rules`` are ``EgressRule``s, dicts of the same fields, or "HOST[:PORT]" strings
        that allow a host; ``allow`` and ``deny`` add one rule per "HOST[:PORT]"
        ("api.github.com", "*.pypi.org:443"). Nothing is allowed unless a rule allows
        it, and a matching deny wins over any allow.

        Raises:
            InvalidRequest: a rule the proxy would not accept (the message says which).
            Conflict: the sandbox was created without egress.
        """
        body = req.policy_body(rules, allow, deny)
        return EgressPolicy.model_validate(self._http.send("PUT", self._policy, json=body).json())

    def clear_policy(self) -> EgressPolicy:
        """Drop the sandbox's own rules: it follows its tenant's default again."""
        return EgressPolicy.model_validate(self._http.send("DELETE", self._policy).json())

    def log(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        blocked: bool | None = None,
        host: str | None = None,
        since: datetime | str | None = None,
    ) -> EgressLog:
        """Requests the sandbox sent out, newest first; pass ``next_before`` as ``before`` for older ones.

        ``blocked=True`` shows only refused requests (with the ``reason``), False only allowed ones.
        """
        params = req.egress_log_params(limit=limit, before=before, blocked=blocked, host=host, since=since)
        return EgressLog.model_validate(self._http.send("GET", self._log, params=params).json())


class Snapshots:
    """This tenant's snapshots: listed, fetched, forked, compared, exported, imported and deleted by id."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._http = client._http

    def list(
        self, *, sandbox_id: str | None = None, labels: Mapping[str, str] | None = None
    ) -> builtins.list[Snapshot]:
        """Oldest first; only those taken of ``sandbox_id`` and carrying all of ``labels``, if given."""
        response = self._http.send("GET", "/v1/snapshots", params=req.snapshot_list_params(sandbox_id, labels))
        return [Snapshot(self._client, SnapshotInfo.model_validate(s)) for s in response.json()["snapshots"]]

    def get(self, snapshot_id: str) -> Snapshot:
        """Raises NotFound if this tenant has no such snapshot."""
        return Snapshot(self._client, _fetch_snapshot(self._http, snapshot_id))

    def delete(self, snapshot_id: str, *, force: bool = False) -> None:
        """Delete a snapshot.

        Raises:
            Conflict: sandboxes or snapshots are built on it (the message names them) and ``force`` is false.
            NotFound: no such snapshot for this tenant.
        """
        params = {"force": "true"} if force else None
        self._http.send("DELETE", f"/v1/snapshots/{req.segment(snapshot_id)}", params=params)

    def fork(
        self,
        snapshot_id: str,
        n: int = 1,
        *,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> builtins.list[Sandbox]:
        """``n`` (1-64) new running sandboxes on the snapshot's filesystem; all are made or none.

        They inherit the limits and lifecycle of the sandbox the snapshot was taken
        of; ``env`` replaces its environment. Each is a new sandbox: a context manager
        around one deletes it on exit.

        Raises:
            NotFound: no such snapshot for this tenant.
            Conflict: the snapshot is not ready, or its image is missing (import it again).
        """
        body = req.fork_body(n, labels, env)
        response = self._http.send(
            "POST", f"/v1/snapshots/{req.segment(snapshot_id)}/fork", json=body, timeout=req.SNAPSHOT_TIMEOUT
        )
        return [Sandbox(self._client, SandboxInfo.model_validate(s)) for s in response.json()["sandboxes"]]

    def changes(self, base: str, to: str, *, path: str = "/", diff: bool = False) -> Changes:
        """What changed from snapshot ``base`` to snapshot ``to``."""
        response = self._http.send(
            "GET",
            f"/v1/snapshots/{req.segment(base)}/changes",
            params=req.changes_params(path, diff, to=to),
            timeout=req.SNAPSHOT_TIMEOUT,
        )
        return Changes.model_validate(response.json())

    def export(self, snapshot_id: str, target: Target, *, progress: Progress | None = None) -> int:
        """Write the snapshot as one tar file, for ``import_`` on this or another daemon; returns its size.

        ``target`` is a path (written whole or not at all) or a binary file object.
        ``progress`` is called with the bytes written so far.

        Raises:
            NotFound: no such snapshot for this tenant.
            Conflict: the snapshot is not ready.
        """
        response = self._http.send(
            "GET", f"/v1/snapshots/{req.segment(snapshot_id)}/export", stream=True, timeout=req.TRANSFER_TIMEOUT
        )
        written = 0
        try:
            with opened(target) as f:
                for chunk in counted(self._http.iter_bytes(response), progress):
                    f.write(chunk)
                    written += len(chunk)
        finally:
            response.close()
        return written

    def import_(self, source: Data, *, progress: Progress | None = None) -> Snapshot:
        """Add a snapshot from a tar that ``export`` wrote: a path (str or ``Path``), a binary file, bytes or chunks.

        Unlike ``files.write``, a str here is a file name: a tar is never text.
        The tar is checked whole (checksums, manifest) before anything is kept.

        Raises:
            InvalidRequest: not an export of sandboxd, or damaged.
            PayloadTooLarge: over the daemon's upload limit.
        """
        content, _ = sync_body(Path(source) if isinstance(source, str) else source, progress)
        response = self._http.send(
            "POST",
            "/v1/snapshots/import",
            content=content,
            timeout=req.TRANSFER_TIMEOUT,
        )
        return Snapshot(self._client, SnapshotInfo.model_validate(response.json()))


def _fetch_snapshot(http: SyncHTTP, snapshot_id: str) -> SnapshotInfo:
    return SnapshotInfo.model_validate(http.send("GET", f"/v1/snapshots/{req.segment(snapshot_id)}").json())


class Snapshot:
    """A handle on one snapshot; ``info`` is its last description, brought up to date by ``refresh()``."""

    def __init__(self, client: Client, info: SnapshotInfo) -> None:
        self.client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    def __repr__(self) -> str:
        return f"<Snapshot {self.id} {self.name!r}>"

    def refresh(self) -> Self:
        self.info = _fetch_snapshot(self.client._http, self.id)
        return self

    def fork(
        self, n: int = 1, *, labels: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
    ) -> builtins.list[Sandbox]:
        """``n`` new sandboxes on this snapshot; see ``Snapshots.fork``."""
        return self.client.snapshots.fork(self.id, n, labels=labels, env=env)

    def changes(self, to: Snapshot | str, *, path: str = "/", diff: bool = False) -> Changes:
        """What changed from this snapshot to ``to`` (another snapshot)."""
        return self.client.snapshots.changes(self.id, to.id if isinstance(to, Snapshot) else to, path=path, diff=diff)

    def export(self, target: Target, *, progress: Progress | None = None) -> int:
        """Write this snapshot as a tar; see ``Snapshots.export``."""
        return self.client.snapshots.export(self.id, target, progress=progress)

    def delete(self, *, force: bool = False) -> None:
        """Delete this snapshot; see ``Snapshots.delete``."""
        self.client.snapshots.delete(self.id, force=force)


class Secrets:
    """Credentials the egress proxy puts into a sandbox's requests; the sandbox only ever holds a placeholder."""

    def __init__(self, http: SyncHTTP) -> None:
        self._http = http

    def put(
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
        """Store (or replace) a secret that may be sent only to ``hosts`` ("api.example.com", "*.example.com").

        At most one way to inject it into every request for those hosts:
        ``header="Authorization: Bearer {value}"``, ``basic="username"`` (HTTP basic
        auth) or ``query="api_key"``. Without one, a sandbox created with
        ``secrets=[name]`` finds a placeholder in ``$NAME`` that the proxy swaps for
        the value in headers (and in bodies and query strings if allowed).
        The value is never sent back by the daemon.

        Raises:
            InvalidRequest: a bad name, host or injection (the message never repeats the value).
        """
        inject = req.injection(header, basic, query)
        body = req.secret_body(value, hosts, inject, allow_in_body, allow_in_query)
        return SecretInfo.model_validate(self._http.send("PUT", f"/v1/secrets/{req.segment(name)}", json=body).json())

    def list(self) -> builtins.list[SecretInfo]:
        return [SecretInfo.model_validate(s) for s in self._http.send("GET", "/v1/secrets").json()["secrets"]]

    def get(self, name: str) -> SecretInfo:
        return SecretInfo.model_validate(self._http.send("GET", f"/v1/secrets/{req.segment(name)}").json())

    def delete(self, name: str) -> None:
        """Sandboxes using it stop getting it within a second.

        Raises:
            NotFound: no such secret.
        """
        self._http.send("DELETE", f"/v1/secrets/{req.segment(name)}")


class TenantEgress:
    """The tenant's default egress policy, followed by every sandbox without rules of its own."""

    def __init__(self, http: SyncHTTP) -> None:
        self._http = http

    def policy(self, *, tenant_id: str | None = None) -> EgressPolicy:
        """This key's tenant's default (another tenant's with an admin key)."""
        params = {"tenant_id": tenant_id} if tenant_id else None
        return EgressPolicy.model_validate(self._http.send("GET", "/v1/egress/policy", params=params).json())

    def set_policy(
        self,
        rules: Sequence[req.Rule] | None = None,
        *,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
        tenant_id: str | None = None,
    ) -> EgressPolicy:
        """Replace the default; arguments as ``SandboxEgress.set_policy``."""
        body = req.policy_body(rules, allow, deny)
        params = {"tenant_id": tenant_id} if tenant_id else None
        return EgressPolicy.model_validate(
            self._http.send("PUT", "/v1/egress/policy", json=body, params=params).json()
        )


class TenantLifecycle:
    """A tenant's default idle policy, for sandboxes that set none of their own."""

    def __init__(self, http: SyncHTTP) -> None:
        self._http = http

    def defaults(self, *, tenant_id: str | None = None) -> LifecycleDefaults:
        params = {"tenant_id": tenant_id} if tenant_id else None
        return LifecycleDefaults.model_validate(self._http.send("GET", "/v1/lifecycle/defaults", params=params).json())

    def set_defaults(
        self,
        tenant_id: str,
        *,
        idle_timeout_s: int | None = None,
        idle_action: str | None = None,
        max_lifetime_s: int | None = None,
    ) -> LifecycleDefaults:
        """Replace the tenant's defaults (admin keys only); None leaves a value to the server's default."""
        body = req.lifecycle_defaults_body(
            idle_timeout_s=idle_timeout_s, idle_action=idle_action, max_lifetime_s=max_lifetime_s
        )
        path = f"/v1/tenants/{req.segment(tenant_id)}/lifecycle"
        return LifecycleDefaults.model_validate(self._http.send("PUT", path, json=body).json())


class Tenants:
    """Tenants (admin keys only)."""

    def __init__(self, http: SyncHTTP) -> None:
        self._http = http

    def create(self, name: str) -> Tenant:
        return Tenant.from_wire(self._http.send("POST", "/v1/tenants", json={"name": name}).json())

    def list(self) -> builtins.list[Tenant]:
        return [Tenant.from_wire(t) for t in self._http.send("GET", "/v1/tenants").json()["tenants"]]


class Keys:
    """API keys (admin keys only). The plaintext of a key is in ``create``'s answer and nowhere else."""

    def __init__(self, http: SyncHTTP) -> None:
        self._http = http

    def create(self, tenant_id: str, *, name: str = "", admin: bool = False) -> ApiKey:
        path = f"/v1/tenants/{req.segment(tenant_id)}/keys"
        return ApiKey.from_wire(self._http.send("POST", path, json={"name": name, "admin": admin}).json())

    def list(self, *, tenant_id: str | None = None) -> builtins.list[ApiKey]:
        params = {"tenant_id": tenant_id} if tenant_id else None
        return [ApiKey.from_wire(k) for k in self._http.send("GET", "/v1/keys", params=params).json()["keys"]]

    def revoke(self, key_id: str) -> None:
        self._http.send("DELETE", f"/v1/keys/{req.segment(key_id)}")


class Audit:
    def __init__(self, http: SyncHTTP) -> None:
        self._http = http

    def query(
        self,
        *,
        sandbox_id: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditRecord]:
        """Audit records visible to this key; page on with ``after_seq``."""
        params = req.audit_params(
            sandbox_id=sandbox_id, action=action, since=since, until=until, after_seq=after_seq, limit=limit
        )
        return [AuditRecord.from_wire(r) for r in self._http.send("GET", "/v1/audit", params=params).json()["records"]]

    def verify(self) -> AuditVerification:
        """The daemon's check of the whole hash chain (admin keys only)."""
        return AuditVerification.from_wire(self._http.send("GET", "/v1/audit/verify").json())
