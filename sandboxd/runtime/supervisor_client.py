"""The daemon's side of a sandbox supervisor: async HTTP over the sandbox's unix socket.

One client per sandbox keeps a small pool of keep-alive connections, so an exec
costs a request on an open socket and no connection set-up. This module is the
boundary where the supervisor's answers become sandboxd's own: error bodies become
``sandboxd.errors`` classes (through ``error_from_code``), a socket that does not
answer becomes ``SandboxUnavailable``, and JSON becomes the dataclasses of
``agent_types``. The wire protocol is described in ``sandboxd/supervisor/server.py``.

Streams (``exec_stream``, ``read_file``, ``download_archive``) are async
generators: the request is sent on the first iteration, and an error the
supervisor answers is raised there. Iterate them to the end or ``aclose()`` them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from sandboxd.errors import SandboxdError, SandboxUnavailable, error_from_code
from sandboxd.runtime.agent_types import ExecChunk, ExecResult, FileInfo, ProcessInfo, ProcessOutput

DEFAULT_MAX_OUTPUT = 1 << 20
# Plain calls answer in milliseconds; this only bounds a supervisor that hangs.
CALL_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Streams and uploads last as long as their data does.
STREAM_TIMEOUT = httpx.Timeout(None, connect=5.0)
# What a command's own timeout gets on top, for spawning, killing and answering.
TIMEOUT_MARGIN_S = 10.0


def _b64(data: str) -> bytes:
    return base64.b64decode(data) if data else b""


def _exec_result(data: Mapping[str, Any], stdout: bytes, stderr: bytes) -> ExecResult:
    return ExecResult(
        exit_code=data["exit_code"],
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=data["stdout_truncated"],
        stderr_truncated=data["stderr_truncated"],
        duration_ms=data["duration_ms"],
        timed_out=data["timed_out"],
        signal=data["signal"],
    )


def _process_info(data: Mapping[str, Any]) -> ProcessInfo:
    return ProcessInfo(
        id=data["id"],
        pid=data["pid"],
        name=data["name"],
        argv=tuple(data["argv"]),
        cwd=data["cwd"],
        state=data["state"],
        exit_code=data["exit_code"],
        signal=data["signal"],
        started_at=data["started_at"],
        ended_at=data["ended_at"],
    )


def _file_info(data: Mapping[str, Any]) -> FileInfo:
    return FileInfo(
        name=data["name"],
        path=data["path"],
        type=data["type"],
        size=data["size"],
        mode=int(data["mode"], 8),
        mtime=data["mtime"],
        target=data.get("target"),
    )


def _error(response: httpx.Response) -> SandboxdError:
    try:
        body = json.loads(response.content)
        return error_from_code(str(body["error"]), str(body["message"]))
    except (ValueError, KeyError, TypeError):
        return SandboxdError(f"the sandbox supervisor answered HTTP {response.status_code} without an explanation")


def _command_timeout(timeout: float | None) -> httpx.Timeout:
    if timeout is None:
        return STREAM_TIMEOUT
    return httpx.Timeout(timeout + TIMEOUT_MARGIN_S, connect=5.0)


def _exec_body(
    argv: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str] | None,
    stdin: bytes | None,
    timeout: float | None,
    max_output: int,
) -> dict[str, Any]:
    return {
        "argv": list(argv),
        "cwd": cwd,
        "env": dict(env) if env is not None else None,
        "stdin": base64.b64encode(stdin).decode("ascii") if stdin is not None else None,
        "timeout": timeout,
        "max_output": max_output,
    }


class SupervisorClient:
    """Talks to one sandbox's supervisor. Safe to share between tasks; close with ``aclose()``."""

    def __init__(self, socket_path: str | Path, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.socket_path = Path(socket_path)
        # No TLS over a unix socket, and no proxy settings from the environment: building an
        # SSL context costs 20-40 ms, which would dominate a new sandbox's first call.
        self._http = httpx.AsyncClient(
            transport=transport or httpx.AsyncHTTPTransport(uds=str(socket_path), verify=False),
            base_url="http://sandbox",
            timeout=CALL_TIMEOUT,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> SupervisorClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- plumbing --------------------------------------------------------------------------

    def _unavailable(self, exc: httpx.TransportError) -> SandboxUnavailable:
        if isinstance(exc, httpx.TimeoutException):
            return SandboxUnavailable("the sandbox supervisor did not answer in time")
        return SandboxUnavailable(f"the sandbox supervisor cannot be reached ({type(exc).__name__})")

    async def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    @asynccontextmanager
    async def _stream(self, method: str, url: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        kwargs.setdefault("timeout", STREAM_TIMEOUT)
        try:
            async with self._http.stream(method, url, **kwargs) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error(response)
                yield response
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from None

    # --- health and exec -------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/health")
        return result

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> ExecResult:
        """Run a command to its end, or until ``timeout`` seconds kill it and all it started.

        Raises:
            InvalidRequest: a malformed argv, env or timeout.
            NotFound, NotADirectory: ``cwd`` is not an existing directory.
            SandboxUnavailable: the supervisor does not answer.
        """
        body = _exec_body(argv, cwd, env, stdin, timeout, max_output)
        data = await self._call("POST", "/exec", json=body, timeout=_command_timeout(timeout))
        return _exec_result(data, _b64(data["stdout"]), _b64(data["stderr"]))

    async def exec_stream(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> AsyncIterator[ExecChunk | ExecResult]:
        """Output chunks as the command writes them, then one ExecResult (with empty stdout/stderr).

        Closing the generator early kills the command and everything it started.
        """
        body = _exec_body(argv, cwd, env, stdin, timeout, max_output)
        result: ExecResult | None = None
        async with self._stream("POST", "/exec/stream", json=body) as response:
            async for line in response.aiter_lines():
                if not line:
                    continue
                item = json.loads(line)
                if "exit" in item:
                    result = _exec_result(item["exit"], b"", b"")
                else:
                    yield ExecChunk(stream=item["stream"], data=_b64(item["data"]))
        if result is None:
            raise SandboxUnavailable("the sandbox supervisor ended the stream without the command's exit")
        yield result

    # --- background processes --------------------------------------------------------------

    async def start_process(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> ProcessInfo:
        body = {"argv": list(argv), "cwd": cwd, "env": dict(env) if env is not None else None, "name": name}
        return _process_info(await self._call("POST", "/processes", json=body))

    async def list_processes(self) -> list[ProcessInfo]:
        data = await self._call("GET", "/processes")
        return [_process_info(p) for p in data["processes"]]

    async def get_process(self, process_id: str) -> ProcessInfo:
        return _process_info(await self._call("GET", f"/processes/{quote(process_id, safe='')}"))

    async def read_output(self, process_id: str, stdout_offset: int = 0, stderr_offset: int = 0) -> ProcessOutput:
        params = {"stdout_offset": stdout_offset, "stderr_offset": stderr_offset}
        data = await self._call("GET", f"/processes/{quote(process_id, safe='')}/output", params=params)
        return ProcessOutput(
            stdout=_b64(data["stdout"]),
            stderr=_b64(data["stderr"]),
            stdout_offset=data["stdout_offset"],
            stderr_offset=data["stderr_offset"],
            stdout_dropped=data["stdout_dropped"],
            stderr_dropped=data["stderr_dropped"],
            state=data["state"],
            exit_code=data["exit_code"],
        )

    async def write_stdin(self, process_id: str, data: bytes, eof: bool = False) -> int:
        """Write to the process's stdin (closing it after, with ``eof``); the number of bytes written."""
        params = {"eof": "1"} if eof else {}
        url = f"/processes/{quote(process_id, safe='')}/stdin"
        answer = await self._call("POST", url, content=data, params=params)
        written: int = answer["written"]
        return written

    async def signal(self, process_id: str, sig: str | int) -> ProcessInfo:
        """Signal the process's group; KILL takes down everything it started, even after it exited."""
        url = f"/processes/{quote(process_id, safe='')}/signal"
        return _process_info(await self._call("POST", url, json={"signal": sig}))

    async def wait(self, process_id: str, timeout: float) -> ProcessInfo:
        """The process once it has exited, or as it is after ``timeout`` seconds."""
        url = f"/processes/{quote(process_id, safe='')}/wait"
        data = await self._call("POST", url, params={"timeout": timeout}, timeout=_command_timeout(timeout))
        return _process_info(data)

    async def forget(self, process_id: str) -> None:
        await self._call("DELETE", f"/processes/{quote(process_id, safe='')}")

    # --- files -----------------------------------------------------------------------------

    async def read_file(self, path: str) -> AsyncIterator[bytes]:
        async with self._stream("GET", "/files/content", params={"path": path}) as response:
            async for chunk in response.aiter_raw():
                yield chunk

    async def write_file(
        self,
        path: str,
        data: bytes | AsyncIterable[bytes],
        mode: int = 0o644,
        parents: bool = True,
    ) -> FileInfo:
        """Replace ``path`` atomically with ``data`` (streamed when it is an async iterable)."""
        params = {"path": path, "mode": f"{mode:04o}", "parents": "1" if parents else "0"}
        answer = await self._call("PUT", "/files/content", params=params, content=data, timeout=STREAM_TIMEOUT)
        return _file_info(answer)

    async def stat(self, path: str) -> FileInfo:
        return _file_info(await self._call("GET", "/files/stat", params={"path": path}))

    async def list_dir(self, path: str) -> list[FileInfo]:
        data = await self._call("GET", "/files/list", params={"path": path})
        return [_file_info(e) for e in data["entries"]]

    async def mkdir(self, path: str, parents: bool = False, mode: int = 0o755) -> FileInfo:
        body = {"path": path, "parents": parents, "mode": f"{mode:04o}"}
        return _file_info(await self._call("POST", "/files/mkdir", json=body))

    async def delete(self, path: str, recursive: bool = False) -> None:
        await self._call("DELETE", "/files", params={"path": path, "recursive": "1" if recursive else "0"})

    async def move(self, src: str, dst: str, overwrite: bool = False) -> FileInfo:
        body = {"src": src, "dst": dst, "overwrite": overwrite}
        return _file_info(await self._call("POST", "/files/move", json=body))

    async def download_archive(self, path: str) -> AsyncIterator[bytes]:
        """The directory's contents as an uncompressed tar stream, names relative to it."""
        async with self._stream("GET", "/files/archive", params={"path": path}) as response:
            async for chunk in response.aiter_raw():
                yield chunk

    async def upload_archive(self, path: str, chunks: bytes | AsyncIterable[bytes]) -> int:
        """Extract a tar (or tar.gz) into directory ``path``; the number of members extracted.

        Raises:
            InvalidRequest: a member would land outside ``path`` (members before it stay).
        """
        answer = await self._call(
            "PUT", "/files/archive", params={"path": path}, content=chunks, timeout=STREAM_TIMEOUT
        )
        extracted: int = answer["extracted"]
        return extracted


__all__ = ["SupervisorClient"]
