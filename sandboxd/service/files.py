"""Files in a sandbox: read, write, list, stat, mkdir, delete, move, and whole directories as tar.

Contents stream through in chunks in both directions and are never held whole;
the audit trail records paths and sizes, never contents. Everything runs as the
sandbox user, so the kernel's permission checks are the ones that apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from sandboxd.errors import InvalidRequest, IsADirectory, NotADirectory, PayloadTooLarge
from sandboxd.service.audit import AuditLog
from sandboxd.service.sandboxes import SandboxService
from sandboxd.service.tenants import Principal


def check_path(path: str) -> str:
    if not path:
        raise InvalidRequest("path is required")
    if "\x00" in path:
        raise InvalidRequest("path must not contain NUL bytes")
    if len(path) > 4096:
        raise InvalidRequest("path is longer than 4096 characters")
    return path


def parse_mode(mode: str | int | None, default: int) -> int:
    if mode is None or mode == "":
        return default
    if isinstance(mode, int):
        value = mode
    else:
        try:
            value = int(mode, 8)
        except ValueError:
            raise InvalidRequest(f"mode {mode!r} is not an octal permission like 0644") from None
    if not 0 <= value <= 0o7777:
        raise InvalidRequest(f"mode {mode!r} is out of range (0000-7777)")
    return value


async def started(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Pull the first chunk now, so a failure to open (permissions, a vanished file) is raised
    before the caller commits to a 200 answer; the rest streams as it comes."""
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""

    async def rest() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return rest()


async def capped(chunks: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass chunks through, failing once more than ``limit`` bytes have gone by."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"upload is larger than this server's limit of {limit} bytes")
        yield chunk


class FileService:
    def __init__(self, sandboxes: SandboxService, audit: AuditLog, max_upload_bytes: int) -> None:
        self._sandboxes = sandboxes
        self._audit = audit
        self._max_upload = max_upload_bytes

    async def read(self, principal: Principal, sandbox_id: str, path: str) -> tuple[Any, AsyncIterator[bytes]]:
        """Stat first so a missing file is a clean 404 before any byte is sent."""
        path = check_path(path)
        _, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        info = await agent.stat(path)
        if info.type == "dir":
            raise IsADirectory(f"{path} is a directory; list it, or download it as an archive")
        return info, await started(agent.read_file(path))

    async def write(
        self, principal: Principal, sandbox_id: str, path: str, body: AsyncIterable[bytes], mode: str | None
    ) -> Any:
        path = check_path(path)
        file_mode = parse_mode(mode, 0o644)
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        info = await agent.write_file(path, capped(body, self._max_upload), mode=file_mode, parents=True)
        self._audit.record(
            principal, "file.write", sandbox_id=record.id, args={"path": path, "size": info.size, "mode": oct(file_mode)}
        )
        return info

    async def stat(self, principal: Principal, sandbox_id: str, path: str) -> Any:
        path = check_path(path)
        _, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        return await agent.stat(path)

    async def list(self, principal: Principal, sandbox_id: str, path: str) -> Any:
        path = check_path(path)
        _, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        return await agent.list_dir(path)

    async def mkdir(self, principal: Principal, sandbox_id: str, path: str, parents: bool, mode: str) -> Any:
        path = check_path(path)
        dir_mode = parse_mode(mode, 0o755)
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        result = await agent.mkdir(path, parents=parents, mode=dir_mode)
        self._audit.record(principal, "file.mkdir", sandbox_id=record.id, args={"path": path, "parents": parents})
        return result

    async def delete(self, principal: Principal, sandbox_id: str, path: str, recursive: bool) -> None:
        path = check_path(path)
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        await agent.delete(path, recursive=recursive)
        self._audit.record(principal, "file.delete", sandbox_id=record.id, args={"path": path, "recursive": recursive})

    async def move(self, principal: Principal, sandbox_id: str, src: str, dst: str, overwrite: bool) -> Any:
        src, dst = check_path(src), check_path(dst)
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        result = await agent.move(src, dst, overwrite=overwrite)
        self._audit.record(
            principal, "file.move", sandbox_id=record.id, args={"src": src, "dst": dst, "overwrite": overwrite}
        )
        return result

    async def download_archive(self, principal: Principal, sandbox_id: str, path: str) -> AsyncIterator[bytes]:
        path = check_path(path)
        _, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        info = await agent.stat(path)
        if info.type != "dir":
            raise NotADirectory(f"{path} is not a directory; read it as a file instead")
        return await started(agent.download_archive(path))

    async def upload_archive(self, principal: Principal, sandbox_id: str, path: str, body: AsyncIterable[bytes]) -> Any:
        path = check_path(path)
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        result = await agent.upload_archive(path, capped(body, self._max_upload))
        self._audit.record(principal, "file.upload_archive", sandbox_id=record.id, args={"path": path})
        return result
