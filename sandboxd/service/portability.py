"""Snapshots as one portable file: export here, import on another host.

The file is a plain tar of three members, in this order:

    manifest.json   what the snapshot is (name, labels, settings), the image's id and
                    layers, and the size and sha256 of each part that follows
    image.tar       the engine's own ``docker save`` of the snapshot's image
    SHA256SUMS      sha256 of manifest.json and image.tar, in ``sha256sum`` format

so ``tar -x`` and ``sha256sum -c SHA256SUMS`` check a file by hand. Nothing is
held in memory: an export spools the engine's stream to an unlinked temporary
file (its size and digest must be in the manifest, ahead of it), and an import
spools the upload the same way and verifies every size and digest *before* the
engine sees a byte, so a corrupt or truncated file is refused with nothing left
behind. Environment values never leave the host: the manifest names variables only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from sandboxd.errors import InvalidRequest, PayloadTooLarge
from sandboxd.ids import new_id
from sandboxd.runtime.base import Runtime
from sandboxd.service import images
from sandboxd.service.audit import AuditLog
from sandboxd.service.snapshots import SnapshotService
from sandboxd.service.tenants import Principal
from sandboxd.store import SnapshotRecord, Store

FORMAT: Final = "sandboxd-snapshot/1"
MANIFEST: Final = "manifest.json"
IMAGE: Final = "image.tar"
SUMS: Final = "SHA256SUMS"
_CHUNK: Final = 1 << 20
_MAX_MANIFEST: Final = 1 << 20
_BLOCK: Final = tarfile.BLOCKSIZE


@dataclass(frozen=True, slots=True)
class Export:
    """An export ready to stream: its exact length, and its bytes."""

    filename: str
    size: int
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    offset: int
    size: int


class Portability:
    def __init__(
        self, store: Store, runtime: Runtime, snapshots: SnapshotService, audit: AuditLog, *, spool_dir: Path
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._snapshots = snapshots
        self._audit = audit
        self._spool_dir = spool_dir

    # --- export --------------------------------------------------------------------------------

    async def export(self, principal: Principal, snapshot_id: str) -> Export:
        """The snapshot as one tar stream (see the module docstring).

        Raises:
            NotFound: no such snapshot for this tenant.
            Conflict: the snapshot is not ready.
        """
        record = self._snapshots.ready(principal, snapshot_id)
        with self._audit.recording(principal, "snapshot.export", args={"snapshot_id": record.id}):
            info = await self._runtime.inspect_image(record.image)
            if info is None:
                raise InvalidRequest(f"the image of snapshot {record.id} is missing from this host")
            spool = self._spool()
            try:
                digest = hashlib.sha256()
                size = 0

                def sink(chunk: bytes) -> None:
                    nonlocal size
                    spool.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)

                await self._runtime.save_image(info.id, sink)
                await asyncio.to_thread(spool.flush)
            except BaseException:
                spool.close()
                raise
            manifest = json.dumps(
                manifest_for(record, image_id=info.id, layers=list(info.layers), image_size=size, digest=digest.hexdigest()),
                indent=2,
                sort_keys=True,
            ).encode()
            sums = (
                f"{hashlib.sha256(manifest).hexdigest()}  {MANIFEST}\n{digest.hexdigest()}  {IMAGE}\n".encode()
            )
            head = _header(MANIFEST, len(manifest)) + manifest + _padding(len(manifest)) + _header(IMAGE, size)
            tail = _padding(size) + _header(SUMS, len(sums)) + sums + _padding(len(sums)) + b"\0" * (2 * _BLOCK)
        return Export(
            filename=f"{record.id}.tar",
            size=len(head) + size + len(tail),
            chunks=_stream(head, spool, tail),
        )

    # --- import --------------------------------------------------------------------------------

    async def import_(self, principal: Principal, body: AsyncIterator[bytes], *, max_bytes: int) -> SnapshotRecord:
        """A snapshot from an exported file, under a new id; checked whole before the engine loads it.

        Raises:
            InvalidRequest: the file is not an export, or is truncated or corrupt.
            PayloadTooLarge: the upload is larger than ``max_bytes``.
        """
        with self._audit.recording(principal, "snapshot.import") as pending:
            with self._spool() as spool:
                received = 0
                buffered = bytearray()  # gathered to a megabyte: one thread hop per write, not a hundred
                async for chunk in body:
                    received += len(chunk)
                    if received > max_bytes:
                        raise PayloadTooLarge(f"the upload is larger than this server's limit of {max_bytes} bytes")
                    buffered += chunk
                    if len(buffered) >= _CHUNK:
                        await asyncio.to_thread(spool.write, bytes(buffered))
                        buffered.clear()
                await asyncio.to_thread(lambda: (spool.write(bytes(buffered)), spool.flush()))
                pending.args["bytes"] = received
                manifest, image_part = await asyncio.to_thread(verify_archive, spool, received)
                record = self._begin(principal, manifest)
                pending.args["snapshot_id"] = record.id
                try:
                    loaded = await self._runtime.load_image(_region(spool, image_part))
                    expected = manifest["image"]["id"]
                    if loaded != expected:
                        raise InvalidRequest(f"the engine loaded image {loaded}, but the manifest names {expected}")
                    await self._runtime.tag_image(loaded, record.image)
                    info = await self._runtime.inspect_image(record.image)
                    return self._store.update_snapshot(
                        record.id,
                        state="ready",
                        image_id=loaded,
                        total_bytes=info.size if info else None,
                    )
                except BaseException:
                    with contextlib.suppress(Exception):
                        await self._runtime.remove_image(record.image)
                        self._store.delete_snapshot(record.id)
                    raise

    def _begin(self, principal: Principal, manifest: dict[str, Any]) -> SnapshotRecord:
        meta = manifest["snapshot"]
        now = time.time()
        snapshot_id = new_id("snp")
        spec = dict(meta.get("spec") or {})
        spec["env"] = {}
        record = SnapshotRecord(
            id=snapshot_id,
            tenant_id=principal.tenant_id,
            sandbox_id=None,
            parent_id=None,
            name=str(meta.get("name", "")),
            labels={**meta.get("labels", {}), "imported-from": str(meta.get("id", ""))},
            state="creating",
            image=images.snapshot_image(snapshot_id),
            image_id=None,
            size_bytes=meta.get("size_bytes"),
            total_bytes=None,
            spec=spec,
            created_at=now,
            updated_at=now,
        )
        self._store.insert_snapshot(record)
        return record

    def _spool(self) -> IO[bytes]:
        # Unlinked at once: the space is the kernel's to reclaim however the request ends.
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryFile(dir=self._spool_dir)


def manifest_for(record: SnapshotRecord, *, image_id: str, layers: list[str], image_size: int, digest: str) -> dict[str, Any]:
    spec = {k: v for k, v in record.spec.items() if k != "env"}
    spec["env_names"] = sorted((record.spec.get("env") or {}).keys())
    return {
        "format": FORMAT,
        "exported_at": time.time(),
        "snapshot": {
            "id": record.id,
            "name": record.name,
            "labels": record.labels,
            "spec": spec,
            "created_at": record.created_at,
            "size_bytes": record.size_bytes,
            "total_bytes": record.total_bytes,
        },
        "image": {"id": image_id, "layers": layers},
        "parts": [{"name": IMAGE, "size": image_size, "sha256": digest}],
    }


def verify_archive(file: IO[bytes], length: int) -> tuple[dict[str, Any], Part]:
    """Check an uploaded export whole: members, sizes, digests. Returns its manifest and image part.

    Raises:
        InvalidRequest: saying what is wrong, for every way the file can be damaged.
    """
    if length == 0:
        raise InvalidRequest("the upload is empty: send an exported snapshot file as the request body")
    file.seek(0)
    members: dict[str, Part] = {}
    try:
        with tarfile.open(fileobj=file, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    raise InvalidRequest(f"the archive holds {member.name!r}, which is not a file: not a snapshot export")
                if member.offset_data + member.size > length:
                    raise InvalidRequest(
                        f"the archive is truncated: {member.name} needs {member.size} bytes, "
                        f"only {max(length - member.offset_data, 0)} arrived"
                    )
                members[member.name] = Part(member.name, member.offset_data, member.size)
    except tarfile.TarError as exc:
        raise InvalidRequest(f"the upload is not a readable tar archive ({exc}); export the snapshot again") from None
    missing = [name for name in (MANIFEST, IMAGE, SUMS) if name not in members]
    if missing:
        raise InvalidRequest(f"the archive lacks {', '.join(missing)}: not a complete snapshot export")
    if members[MANIFEST].size > _MAX_MANIFEST:
        raise InvalidRequest("manifest.json is implausibly large: not a snapshot export")
    manifest_bytes = _read(file, members[MANIFEST])
    try:
        manifest = json.loads(manifest_bytes)
        if manifest.get("format") != FORMAT:
            raise InvalidRequest(f"unknown export format {manifest.get('format')!r}; this server reads {FORMAT}")
        parts = {p["name"]: p for p in manifest["parts"]}
        expected = parts[IMAGE]
        image_id = manifest["image"]["id"]
        if not isinstance(image_id, str) or not isinstance(manifest["snapshot"], dict):
            raise TypeError
    except InvalidRequest:
        raise
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidRequest("manifest.json is damaged or incomplete; export the snapshot again") from None
    image = members[IMAGE]
    if image.size != expected.get("size"):
        raise InvalidRequest(f"image.tar is {image.size} bytes, the manifest says {expected.get('size')}: the file is damaged")
    digest = _digest(file, image)
    if digest != expected.get("sha256"):
        raise InvalidRequest(f"image.tar has sha256 {digest}, the manifest says {expected.get('sha256')}: the file is corrupt")
    sums = _read(file, members[SUMS]).decode(errors="replace")
    listed = dict(reversed(line.split("  ", 1)) for line in sums.splitlines() if "  " in line)
    if listed.get(MANIFEST) != hashlib.sha256(manifest_bytes).hexdigest() or listed.get(IMAGE) != digest:
        raise InvalidRequest("SHA256SUMS does not match the archive's contents: the file is corrupt")
    return manifest, image


def _read(file: IO[bytes], part: Part) -> bytes:
    file.seek(part.offset)
    data = file.read(part.size)
    if len(data) != part.size:
        raise InvalidRequest(f"the archive is truncated inside {part.name}")
    return data


def _digest(file: IO[bytes], part: Part) -> str:
    digest = hashlib.sha256()
    for chunk in _region(file, part):
        digest.update(chunk)
    return digest.hexdigest()


def _region(file: IO[bytes], part: Part) -> Iterator[bytes]:
    """The bytes of one member, read a chunk at a time (in whichever thread iterates)."""
    file.seek(part.offset)
    left = part.size
    while left:
        chunk = file.read(min(_CHUNK, left))
        if not chunk:
            raise InvalidRequest(f"the archive is truncated inside {part.name}")
        left -= len(chunk)
        yield chunk


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


async def _stream(head: bytes, spool: IO[bytes], tail: bytes) -> AsyncIterator[bytes]:
    try:
        yield head
        await asyncio.to_thread(spool.seek, 0)
        while chunk := await asyncio.to_thread(spool.read, _CHUNK):
            yield chunk
        yield tail
    finally:
        spool.close()

