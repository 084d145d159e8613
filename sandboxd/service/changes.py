"""What changed: files added, modified and deleted between two filesystems of a sandbox.

Either side is a snapshot or a sandbox's live filesystem. Each side is read as a
tar stream from the engine (a snapshot through a container made from its image
and never started) and reduced to a listing: path -> type, size, mode and the
sha256 of the content (a link's target for a symlink). Comparing two listings is
pure (``compare``), so it is tested without an engine. Kernel and scratch trees
(/proc, /sys, /dev, /run, /tmp, caches) and the supervisor's own files are left out.

With ``diff`` a unified diff comes with each changed text file; those files are
fetched one at a time afterwards, so listings never hold file contents.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hashlib
import posixpath
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO, Final

from sandboxd.errors import InvalidRequest
from sandboxd.models import ChangesOut, FileChange
from sandboxd.runtime.base import Runtime
from sandboxd.service import images
from sandboxd.service.sandboxes import SandboxService
from sandboxd.service.snapshots import SnapshotService
from sandboxd.service.tenants import Principal

SKIPPED_TREES: Final = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/cache", "/var/tmp", "/opt/sandboxd")
SKIPPED_NAMES: Final = frozenset({"__pycache__", ".cache"})
# Files the engine writes into every running container: never the sandbox's own changes.
SKIPPED_FILES: Final = frozenset({"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/.dockerenv"})
MAX_CHANGES: Final = 10_000
MAX_DIFFS: Final = 100
MAX_DIFF_BYTES: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class Entry:
    type: str  # file, directory, symlink, other
    size: int
    mode: int
    # sha256 of a file's content, a symlink's target; None for the rest.
    digest: str | None = None


Listing = dict[str, Entry]


def skipped(path: str) -> bool:
    if path in SKIPPED_FILES:
        return True
    if any(path == tree or path.startswith(tree + "/") for tree in SKIPPED_TREES):
        return True
    return any(part in SKIPPED_NAMES for part in path.split("/"))


def read_listing(stream: BinaryIO, root: str) -> Listing:
    """A listing of the tar the engine gives for ``root``: absolute paths, contents hashed as they pass."""
    listing: Listing = {}
    parent = posixpath.dirname(root.rstrip("/")) or "/"

    def absolute(name: str) -> str:
        # The engine names members after the requested path's last component ("etc/passwd"
        # when asked for /etc); asked for /, it names them "/etc/passwd".
        if root == "/":
            return "/" + name.strip("/")
        return posixpath.normpath(posixpath.join(parent, name))

    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            path = absolute(member.name)
            if skipped(path):
                continue
            if member.isfile():
                digest = hashlib.sha256()
                source = tar.extractfile(member)
                if source is not None:
                    while chunk := source.read(1 << 20):
                        digest.update(chunk)
                listing[path] = Entry("file", member.size, member.mode, digest.hexdigest())
            elif member.islnk():
                # A hard link: the same content as the path it links to, which came earlier.
                linked = listing.get(absolute(member.linkname))
                listing[path] = Entry("file", linked.size if linked else 0, member.mode, linked.digest if linked else None)
            elif member.isdir():
                listing[path] = Entry("directory", 0, member.mode)
            elif member.issym():
                listing[path] = Entry("symlink", len(member.linkname), member.mode, member.linkname)
            else:
                listing[path] = Entry("other", 0, member.mode)
    return listing


def compare(before: Listing, after: Listing) -> list[FileChange]:
    """Every path added, deleted or modified (content, type, mode or link target), sorted by path.

    A directory counts only when it appears or disappears: its mtime changes whenever
    anything inside it does, and that is already listed.
    """
    changes: list[FileChange] = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old is None and new is not None:
            changes.append(FileChange(path=path, change="added", type=new.type, size_after=new.size))  # type: ignore[arg-type]
        elif new is None and old is not None:
            changes.append(FileChange(path=path, change="deleted", type=old.type, size_before=old.size))  # type: ignore[arg-type]
        elif old is not None and new is not None and old.type != "directory" and (
            old.type != new.type or old.digest != new.digest or old.mode != new.mode
        ):
            changes.append(
                FileChange(path=path, change="modified", type=new.type, size_before=old.size, size_after=new.size)  # type: ignore[arg-type]
            )
    return changes


def unified_diff(path: str, before: bytes | None, after: bytes | None) -> str | None:
    """A unified diff of two versions of a text file; None when either side is not text."""
    texts = []
    for data in (before, after):
        if data is None:
            texts.append([])
            continue
        if b"\0" in data:
            return None
        try:
            texts.append(data.decode("utf-8").splitlines(keepends=True))
        except UnicodeDecodeError:
            return None
    return "".join(difflib.unified_diff(texts[0], texts[1], f"a{path}", f"b{path}"))


def _read_one_file(stream: BinaryIO) -> bytes | None:
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.isfile() and member.size <= MAX_DIFF_BYTES:
                source = tar.extractfile(member)
                return source.read() if source is not None else None
            return None
    return None


class ChangeService:
    """Read-only, so not audited: it changes nothing."""

    def __init__(self, runtime: Runtime, sandboxes: SandboxService, snapshots: SnapshotService) -> None:
        self._runtime = runtime
        self._sandboxes = sandboxes
        self._snapshots = snapshots

    async def since(
        self, principal: Principal, sandbox_id: str, snapshot_id: str | None, *, path: str = "/", diff: bool = False
    ) -> ChangesOut:
        """The sandbox's live filesystem against a snapshot (by default the latest one taken of it).

        Raises:
            NotFound: no such sandbox or snapshot for this tenant.
            InvalidRequest: no snapshot named and none taken of this sandbox.
        """
        record = self._sandboxes.get(principal, sandbox_id)
        if snapshot_id is None:
            taken = [s for s in self._snapshots.list(principal, sandbox_id=record.id) if s.state == "ready"]
            if not taken:
                raise InvalidRequest(f"sandbox {record.id} has no snapshot to compare with; name one with 'since'")
            snapshot_id = taken[-1].id
        base = self._snapshots.ready(principal, snapshot_id)
        async with self._sandboxes.lock(record.id):
            record = self._sandboxes.get(principal, record.id)
            if record.container_id and record.state in ("running", "paused", "stopped"):
                return await self._compare(base.id, base.image, record.id, record.container_id, None, path, diff)
            return await self._compare(base.id, base.image, record.id, None, images.rootfs_image(record), path, diff)

    async def between(
        self, principal: Principal, snapshot_a: str, snapshot_b: str, *, path: str = "/", diff: bool = False
    ) -> ChangesOut:
        """From snapshot ``a`` to snapshot ``b``.

        Raises:
            NotFound: either snapshot is not this tenant's.
        """
        a = self._snapshots.ready(principal, snapshot_a)
        b = self._snapshots.ready(principal, snapshot_b)
        return await self._compare(a.id, a.image, b.id, None, b.image, path, diff)

    async def _compare(
        self,
        base_name: str,
        base_image: str,
        target_name: str,
        target_container: str | None,
        target_image: str | None,
        path: str,
        diff: bool,
    ) -> ChangesOut:
        path = _check_path(path)
        scratch: list[str] = []
        try:
            base_container = await self._runtime.create_stopped(base_image)
            scratch.append(base_container)
            if target_container is None:
                assert target_image is not None
                target_container = await self._runtime.create_stopped(target_image)
                scratch.append(target_container)
            before, after = await asyncio.gather(
                self._listing(base_container, path), self._listing(target_container, path)
            )
            changes = compare(before, after)
            truncated = len(changes) > MAX_CHANGES
            changes = changes[:MAX_CHANGES]
            if diff:
                changes = await self._with_diffs(changes, base_container, target_container)
        finally:
            for container in scratch:
                with contextlib.suppress(Exception):
                    await self._runtime.remove(container)
        return ChangesOut(base=base_name, target=target_name, path=path, changes=changes, truncated=truncated)

    async def _listing(self, container_id: str, path: str) -> Listing:
        return await self._runtime.read_archive(container_id, path, lambda stream: read_listing(stream, path))

    async def _with_diffs(self, changes: Iterable[FileChange], before: str, after: str) -> list[FileChange]:
        result: list[FileChange] = []
        budget = MAX_DIFFS
        for change in changes:
            sizes = [s for s in (change.size_before, change.size_after) if s is not None]
            if change.type != "file" or budget <= 0 or any(s > MAX_DIFF_BYTES for s in sizes):
                result.append(change)
                continue
            budget -= 1
            old = await self._file(before, change.path) if change.change != "added" else None
            new = await self._file(after, change.path) if change.change != "deleted" else None
            result.append(change.model_copy(update={"diff": unified_diff(change.path, old, new)}))
        return result

    async def _file(self, container_id: str, path: str) -> bytes | None:
        return await self._runtime.read_archive(container_id, path, _read_one_file)


def _check_path(path: str) -> str:
    if not path.startswith("/") or "\0" in path:
        raise InvalidRequest(f"path {path!r} must be absolute, e.g. /workspace")
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal != "/" else "/"
