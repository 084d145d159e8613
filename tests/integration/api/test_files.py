"""Files through the API: binary-safe round trips, big files streamed, tar in and out, clear errors."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import httpx


def test_binary_round_trip_with_mode(admin: httpx.Client, sandbox: dict, sh) -> None:
    base = f"/v1/sandboxes/{sandbox['id']}/files"
    payload = bytes(range(256)) * 4
    put = admin.put(f"{base}/content", params={"path": "deep/dir/blob.bin", "mode": "0750"}, content=payload)
    assert put.status_code == 200, put.text
    got = admin.get(f"{base}/content", params={"path": "/workspace/deep/dir/blob.bin"})
    assert got.status_code == 200 and got.content == payload
    stat = admin.get(f"{base}/stat", params={"path": "deep/dir/blob.bin"}).json()
    assert stat["type"] == "file" and stat["size"] == len(payload) and stat["mode"] == "0750"
    assert sh(sandbox["id"], "stat -c %a deep/dir/blob.bin")["stdout"] == "750\n"


def test_fifty_megabytes_stream_both_ways(admin: httpx.Client, sandbox: dict, sh) -> None:
    size = 50 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256(block * 50).hexdigest()

    def body():
        for _ in range(size // len(block)):
            yield block

    base = f"/v1/sandboxes/{sandbox['id']}/files/content"
    put = admin.put(base, params={"path": "big.bin"}, content=body())
    assert put.status_code == 200, put.text
    assert sh(sandbox["id"], "sha256sum big.bin | cut -d' ' -f1")["stdout"].strip() == digest
    h = hashlib.sha256()
    received = 0
    with admin.stream("GET", base, params={"path": "big.bin"}) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            h.update(chunk)
            received += len(chunk)
    assert received == size and h.hexdigest() == digest


def test_list_mkdir_move_delete(admin: httpx.Client, sandbox: dict) -> None:
    base = f"/v1/sandboxes/{sandbox['id']}/files"
    assert admin.post(f"{base}/mkdir", json={"path": "a/b/c"}).status_code == 201
    admin.put(f"{base}/content", params={"path": "a/one.txt"}, content=b"1")
    listing = admin.get(base, params={"path": "a"}).json()["entries"]
    assert {(e["name"], e["type"]) for e in listing} == {("b", "dir"), ("one.txt", "file")}
    assert admin.post(f"{base}/move", json={"src": "a/one.txt", "dst": "a/two.txt"}).status_code == 200
    assert admin.get(f"{base}/content", params={"path": "a/two.txt"}).content == b"1"
    refused = admin.delete(base, params={"path": "a"})
    assert refused.status_code == 409
    assert admin.delete(base, params={"path": "a", "recursive": True}).status_code == 204
    assert admin.get(f"{base}/stat", params={"path": "a"}).status_code == 404


def test_file_errors_are_clear_4xx(admin: httpx.Client, sandbox: dict) -> None:
    base = f"/v1/sandboxes/{sandbox['id']}/files"
    missing = admin.get(f"{base}/content", params={"path": "nope.txt"})
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    is_dir = admin.get(f"{base}/content", params={"path": "/workspace"})
    assert is_dir.status_code == 409 and is_dir.json()["error"] == "is_a_directory"
    denied = admin.put(f"{base}/content", params={"path": "/etc/passwd"}, content=b"x")
    assert denied.status_code == 403 and denied.json()["error"] == "permission_denied"
    nul = admin.get(f"{base}/stat", params={"path": "a\x00b"})
    assert nul.status_code == 422 and "NUL" in nul.json()["message"]
    shadow = admin.get(f"{base}/content", params={"path": "/etc/shadow"})
    assert shadow.status_code == 403


def test_tar_upload_and_download(admin: httpx.Client, sandbox: dict, sh) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"proj/readme.md": b"# hi\n", "proj/src/main.py": b"print(1)\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    up = admin.put(f"/v1/sandboxes/{sandbox['id']}/archive", params={"path": "/workspace/up"}, content=buf.getvalue())
    assert up.status_code == 200, up.text
    assert sh(sandbox["id"], "python3 up/proj/src/main.py")["stdout"] == "1\n"

    down = admin.get(f"/v1/sandboxes/{sandbox['id']}/archive", params={"path": "/workspace/up"})
    assert down.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(down.content), mode="r") as tar:
        files = {m.name.lstrip("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert files == {"proj/readme.md": b"# hi\n", "proj/src/main.py": b"print(1)\n"}
