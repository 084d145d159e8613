"""Checking an uploaded export before the engine sees it: every kind of damage is a clear refusal."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from sandboxd.errors import InvalidRequest
from sandboxd.service.portability import FORMAT, verify_archive

IMAGE_BYTES = b"layer data " * 1000


def manifest(**changes) -> dict:
    body = {
        "format": FORMAT,
        "snapshot": {"id": "snp_x", "name": "n", "labels": {}, "spec": {}},
        "image": {"id": "sha256:abc", "layers": ["sha256:l1"]},
        "parts": [{"name": "image.tar", "size": len(IMAGE_BYTES), "sha256": hashlib.sha256(IMAGE_BYTES).hexdigest()}],
    }
    body.update(changes)
    return body


def archive(members: dict[str, bytes] | None = None, *, meta: dict | None = None, sums: bytes | None = None) -> bytes:
    if members is None:
        manifest_bytes = json.dumps(meta or manifest()).encode()
        if sums is None:
            sums = (
                f"{hashlib.sha256(manifest_bytes).hexdigest()}  manifest.json\n"
                f"{hashlib.sha256(IMAGE_BYTES).hexdigest()}  image.tar\n"
            ).encode()
        members = {"manifest.json": manifest_bytes, "image.tar": IMAGE_BYTES, "SHA256SUMS": sums}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def check(data: bytes):
    return verify_archive(io.BytesIO(data), len(data))


def test_a_good_archive_passes_and_points_at_the_image() -> None:
    data = archive()
    meta, part = check(data)
    assert meta["image"]["id"] == "sha256:abc"
    assert data[part.offset : part.offset + part.size] == IMAGE_BYTES


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x00garbage" * 200, "not a readable tar"),
        (archive()[:3000], "truncated"),
        (archive({"manifest.json": b"{}", "image.tar": IMAGE_BYTES}), "lacks SHA256SUMS"),
        (archive(meta=manifest(format="other/9")), "unknown export format"),
        (archive(meta=manifest(parts=[])), "damaged or incomplete"),
        (archive(meta={"format": FORMAT}), "damaged or incomplete"),
        (archive(meta=manifest(parts=[{"name": "image.tar", "size": 5, "sha256": "0"}])), "the manifest says 5"),
        (
            archive(meta=manifest(parts=[{"name": "image.tar", "size": len(IMAGE_BYTES), "sha256": "0" * 64}])),
            "corrupt",
        ),
        (archive(sums=b"0000  manifest.json\n"), "SHA256SUMS does not match"),
    ],
)
def test_damage_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check(data)


def test_a_flipped_byte_in_the_image_is_caught() -> None:
    data = bytearray(archive())
    at = bytes(data).index(IMAGE_BYTES) + 100
    data[at] ^= 1
    with pytest.raises(InvalidRequest, match="corrupt"):
        check(bytes(data))
