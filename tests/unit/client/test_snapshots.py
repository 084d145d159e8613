"""Snapshots, forks, restore, suspension, lifecycle, changes, export and import, against the fake daemon."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from sandboxd.client import AsyncClient, Client, Snapshot
from sandboxd.errors import Conflict, InvalidRequest, SandboxdError

from .conftest import SANDBOX_ID, FakeDaemon, sandbox_body

BASE = f"/v1/sandboxes/{SANDBOX_ID}"
SNAPSHOT_ID = "snp_bbbbbbbbbbbbbbbbbbbb"
FORK_IDS = ["sbx_cccccccccccccccccccc", "sbx_dddddddddddddddddddd"]


def snapshot_body(**extra: object) -> dict[str, object]:
    return {
        "id": SNAPSHOT_ID,
        "name": "before",
        "state": "ready",
        "labels": {},
        "sandbox_id": SANDBOX_ID,
        "parent_id": None,
        "size_bytes": 4096,
        "total_bytes": 90_000_000,
        "image": "sandboxd-snapshot:snp_bbbbbbbbbbbbbbbbbbbb",
        "created_at": "2025-01-01T00:00:00Z",
        **extra,
    }


def lifecycle_body(**extra: object) -> dict[str, object]:
    return {
        "sandbox_id": SANDBOX_ID,
        "state": "running",
        "idle_timeout_s": 600,
        "idle_action": "hibernate",
        "max_lifetime_s": None,
        "on_wake": None,
        "idle_for_s": 1.5,
        "busy": False,
        "source": {"idle_timeout_s": "sandbox"},
        **extra,
    }


CHANGES = {
    "base": SNAPSHOT_ID,
    "target": SANDBOX_ID,
    "path": "/workspace",
    "changes": [{"path": "/workspace/a.txt", "change": "modified", "type": "file", "diff": "-a\n+b\n"}],
    "truncated": False,
}


@pytest.fixture
def snapshots(fake: FakeDaemon) -> FakeDaemon:
    fake.on("POST", f"{BASE}/snapshots", httpx.Response(201, json=snapshot_body()))
    fake.on("GET", f"/v1/snapshots/{SNAPSHOT_ID}", snapshot_body())
    forks = {"sandboxes": [sandbox_body(id=i) for i in FORK_IDS]}
    fake.on("POST", f"/v1/snapshots/{SNAPSHOT_ID}/fork", httpx.Response(201, json=forks))
    fake.on("POST", f"{BASE}/restore", sandbox_body())
    for action, state in (("pause", "paused"), ("resume", "running"), ("hibernate", "hibernated")):
        fake.on("POST", f"{BASE}/{action}", sandbox_body(state=state))
    fake.on("POST", f"{BASE}/keepalive", lifecycle_body())
    fake.on("GET", f"{BASE}/lifecycle", lifecycle_body())
    fake.on("PATCH", f"{BASE}/lifecycle", lifecycle_body())
    fake.on("GET", f"{BASE}/changes", CHANGES)
    fake.on("GET", f"/v1/snapshots/{SNAPSHOT_ID}/changes", CHANGES)
    fake.on("DELETE", f"/v1/snapshots/{SNAPSHOT_ID}", 204)
    return fake


@pytest.fixture
def client(snapshots: FakeDaemon) -> Iterator[Client]:
    with Client("http://sbx.test", "key", transport=httpx.MockTransport(snapshots)) as c:
        yield c


@pytest.fixture
async def aclient(snapshots: FakeDaemon) -> AsyncIterator[AsyncClient]:
    async with AsyncClient("http://sbx.test", "key", transport=httpx.MockTransport(snapshots.handle_async)) as c:
        yield c


def _json(fake: FakeDaemon, index: int = -1) -> dict:
    return json.loads(fake.bodies[index])


def test_snapshot_then_fork_and_restore(client: Client, fake: FakeDaemon) -> None:
    sbx = client.sandboxes.get(SANDBOX_ID)
    snap = sbx.snapshot(name="before", labels={"step": "1"})
    assert isinstance(snap, Snapshot)
    assert (snap.id, snap.name, snap.info.size_bytes) == (SNAPSHOT_ID, "before", 4096)
    assert _json(fake) == {"name": "before", "labels": {"step": "1"}}

    forks = snap.fork(2, labels={"fork": "yes"})
    assert [f.id for f in forks] == FORK_IDS
    assert _json(fake) == {"count": 2, "labels": {"fork": "yes"}}

    assert sbx.restore(snap) is sbx
    assert _json(fake) == {"snapshot_id": SNAPSHOT_ID}


def test_fork_of_a_sandbox_snapshots_it_first(client: Client, fake: FakeDaemon) -> None:
    sbx = client.sandboxes.get(SANDBOX_ID)
    forks = sbx.fork(2, env={"ROLE": "worker"})
    assert [f.id for f in forks] == FORK_IDS
    assert fake.calls()[-2:] == [("POST", f"{BASE}/snapshots"), ("POST", f"/v1/snapshots/{SNAPSHOT_ID}/fork")]
    assert _json(fake, -2) == {"name": f"fork of {SANDBOX_ID}"}
    assert _json(fake) == {"count": 2, "env": {"ROLE": "worker"}}


def test_a_bad_fork_count_takes_no_snapshot(client: Client, fake: FakeDaemon) -> None:
    sbx = client.sandboxes.get(SANDBOX_ID)
    before = len(fake.requests)
    with pytest.raises(InvalidRequest, match="count"):
        sbx.fork(0)
    with pytest.raises(InvalidRequest, match="count"):
        sbx.fork(65)
    assert len(fake.requests) == before


def test_suspension_updates_the_handle(client: Client, fake: FakeDaemon) -> None:
    sbx = client.sandboxes.get(SANDBOX_ID)
    assert sbx.pause().state == "paused"
    assert sbx.hibernate().state == "hibernated"
    assert sbx.resume().state == "running"
    assert sbx.keepalive().idle_for_s == 1.5
    assert fake.calls()[-4:] == [
        ("POST", f"{BASE}/pause"),
        ("POST", f"{BASE}/hibernate"),
        ("POST", f"{BASE}/resume"),
        ("POST", f"{BASE}/keepalive"),
    ]


def test_lifecycle_set_sends_only_what_was_given_and_none_clears(client: Client, fake: FakeDaemon) -> None:
    sbx = client.sandboxes.get(SANDBOX_ID)
    assert sbx.lifecycle.get().idle_action == "hibernate"
    sbx.lifecycle.set(idle_timeout_s=60, on_wake=None)
    assert _json(fake) == {"idle_timeout_s": 60, "on_wake": None}
    with pytest.raises(InvalidRequest, match="idle_action"):
        sbx.lifecycle.set(idle_action="explode")


def test_changes_since_a_snapshot_and_between_two(client: Client, fake: FakeDaemon) -> None:
    sbx = client.sandboxes.get(SANDBOX_ID)
    changes = sbx.changes(since=SNAPSHOT_ID, path="/workspace", diff=True)
    assert changes.changes[0].diff == "-a\n+b\n"
    params = fake.requests[-1].url.params
    assert (params["since"], params["path"], params["diff"]) == (SNAPSHOT_ID, "/workspace", "true")

    sbx.changes()
    assert "since" not in fake.requests[-1].url.params

    snap = client.snapshots.get(SNAPSHOT_ID)
    snap.changes("snp_eeeeeeeeeeeeeeeeeeee")
    assert fake.requests[-1].url.params["to"] == "snp_eeeeeeeeeeeeeeeeeeee"


def test_list_and_delete_with_force(client: Client, fake: FakeDaemon) -> None:
    fake.on("GET", "/v1/snapshots", {"snapshots": [snapshot_body()]})
    listed = client.snapshots.list(sandbox_id=SANDBOX_ID, labels={"step": "1"})
    assert [s.id for s in listed] == [SNAPSHOT_ID]
    params = fake.requests[-1].url.params
    assert (params["sandbox_id"], params["label"]) == (SANDBOX_ID, "step=1")

    listed[0].delete(force=True)
    assert fake.requests[-1].url.params["force"] == "true"

    in_use = {"error": "conflict", "message": "snapshot is in use by sandbox sbx_x", "details": {"sandboxes": ["x"]}}
    fake.on("DELETE", f"/v1/snapshots/{SNAPSHOT_ID}", httpx.Response(409, json=in_use))
    with pytest.raises(Conflict, match="in use") as caught:
        client.snapshots.delete(SNAPSHOT_ID)
    assert caught.value.details == {"sandboxes": ["x"]}
    assert "force" not in fake.requests[-1].url.params


def test_export_to_a_path_is_whole_or_absent(client: Client, fake: FakeDaemon, tmp_path: Path) -> None:
    tar = b"T" * 300_000
    fake.on("GET", f"/v1/snapshots/{SNAPSHOT_ID}/export", httpx.Response(200, content=tar))
    seen: list[int] = []
    target = tmp_path / "out" / "snap.tar"
    assert client.snapshots.export(SNAPSHOT_ID, target, progress=seen.append) == len(tar)
    assert target.read_bytes() == tar
    assert seen[-1] == len(tar)

    buffer = io.BytesIO()
    client.snapshots.get(SNAPSHOT_ID).export(buffer)
    assert buffer.getvalue() == tar

    def cut_off(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            yield b"partial"
            raise httpx.ReadError("connection reset", request=request)

        return httpx.Response(200, content=body())

    fake.on("GET", f"/v1/snapshots/{SNAPSHOT_ID}/export", cut_off)
    broken = tmp_path / "broken.tar"
    with pytest.raises(SandboxdError, match="cannot reach"):
        client.snapshots.export(SNAPSHOT_ID, broken)
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]


def test_import_streams_a_local_file(client: Client, fake: FakeDaemon, tmp_path: Path) -> None:
    fake.on("POST", "/v1/snapshots/import", httpx.Response(201, json=snapshot_body(sandbox_id=None)))
    source = tmp_path / "snap.tar"
    source.write_bytes(b"X" * 600_000)
    seen: list[int] = []
    snap = client.snapshots.import_(source, progress=seen.append)
    assert snap.info.sandbox_id is None
    assert fake.bodies[-1] == source.read_bytes()
    assert "content-length" not in fake.requests[-1].headers  # streamed, not read whole
    assert seen[-1] == 600_000
    client.snapshots.import_(str(source))  # a str is a file name here: a tar is never text
    assert fake.bodies[-1] == source.read_bytes()


async def test_async_twin_snapshot_fork_restore_and_export(
    aclient: AsyncClient, fake: FakeDaemon, tmp_path: Path
) -> None:
    sbx = await aclient.sandboxes.get(SANDBOX_ID)
    forks = await sbx.fork(2)
    assert [f.id for f in forks] == FORK_IDS
    snap = await aclient.snapshots.get(SNAPSHOT_ID)
    assert (await sbx.restore(snap)).state == "running"
    assert (await sbx.hibernate()).state == "hibernated"
    await sbx.lifecycle.set(idle_action="pause")
    assert _json(fake) == {"idle_action": "pause"}
    assert (await sbx.changes(since=snap)).target == SANDBOX_ID
    assert fake.requests[-1].url.params["since"] == SNAPSHOT_ID

    fake.on("GET", f"/v1/snapshots/{SNAPSHOT_ID}/export", httpx.Response(200, content=b"tar bytes"))
    assert await snap.export(tmp_path / "s.tar") == 9
    assert (tmp_path / "s.tar").read_bytes() == b"tar bytes"
