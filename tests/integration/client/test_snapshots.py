"""Snapshots, forks, rollback, suspension and export/import through the SDK, against a real daemon."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxd.client import AsyncClient, Client, Sandbox, Snapshot
from sandboxd.errors import Conflict, NotFound, SandboxdError


@pytest.fixture
def snapshots(client: Client) -> Iterator[list[Snapshot]]:
    """Snapshots a test takes; deleted (forced) after the test's sandboxes are gone."""
    taken: list[Snapshot] = []
    yield taken
    for snap in reversed(taken):
        with contextlib.suppress(NotFound):
            snap.delete(force=True)


@pytest.fixture
def made(client: Client) -> Iterator[list[Sandbox]]:
    """Sandboxes a test makes beyond its ``sbx`` (forks): deleted at the end."""
    sandboxes: list[Sandbox] = []
    yield sandboxes
    for sandbox in sandboxes:
        sandbox.delete()


def test_snapshot_changes_and_restore(sbx: Sandbox, snapshots: list[Snapshot]) -> None:
    sbx.files.write("notes.txt", "one\n")
    snap = sbx.snapshot(name="before", labels={"step": "1"})
    snapshots.append(snap)
    assert (snap.info.state, snap.info.sandbox_id, snap.info.labels) == ("ready", sbx.id, {"step": "1"})

    sbx.files.write("notes.txt", "two\n")
    sbx.files.write("new.txt", "fresh\n")
    changes = sbx.changes(since=snap, path="/workspace", diff=True)
    by_path = {c.path: c for c in changes.changes}
    notes = by_path["/workspace/notes.txt"]
    assert notes.change == "modified"
    assert notes.diff is not None and "-one" in notes.diff and "+two" in notes.diff
    assert by_path["/workspace/new.txt"].change == "added"
    # Without 'since', the latest snapshot of the sandbox is the base.
    assert sbx.changes(path="/workspace").base == snap.id

    assert sbx.restore(snap).state == "running"
    assert sbx.files.read("notes.txt") == b"one\n"
    assert not sbx.files.exists("new.txt")


def test_fork_a_sandbox_and_the_snapshot_stays_in_use(
    client: Client, sbx: Sandbox, snapshots: list[Snapshot], made: list[Sandbox]
) -> None:
    sbx.files.write("state.txt", "shared")
    forks = sbx.fork(2, labels={"fork": "yes"})
    made.extend(forks)
    snapshots.extend(client.snapshots.list(sandbox_id=sbx.id))
    assert len(forks) == 2 and len({f.id for f in forks}) == 2
    for fork in forks:
        assert fork.info.labels == {"fork": "yes"}
        assert fork.files.read("state.txt") == b"shared"
    fork_snapshot = snapshots[-1]
    assert fork_snapshot.name == f"fork of {sbx.id}"
    with pytest.raises(Conflict, match="in use"):
        fork_snapshot.delete()


def test_pause_hibernate_resume_keep_files_and_lifecycle(sbx: Sandbox) -> None:
    sbx.files.write("kept.txt", "still here")
    assert sbx.pause().state == "paused"
    assert sbx.resume().state == "running"
    assert sbx.hibernate().state == "hibernated"
    assert sbx.refresh().state == "hibernated"
    assert sbx.resume().state == "running"
    assert sbx.files.read("kept.txt") == b"still here"

    assert sbx.keepalive().idle_for_s < 5
    info = sbx.lifecycle.set(idle_timeout_s=3600, idle_action="pause")
    assert (info.idle_timeout_s, info.idle_action, info.source["idle_timeout_s"]) == (3600, "pause", "sandbox")
    cleared = sbx.lifecycle.set(idle_timeout_s=None)
    assert cleared.idle_action == "pause" and cleared.source["idle_timeout_s"] != "sandbox"


def test_export_then_import_round_trip(
    client: Client, sbx: Sandbox, snapshots: list[Snapshot], made: list[Sandbox], tmp_path: Path
) -> None:
    marker = secrets.token_hex(8)
    sbx.files.write("marker.txt", marker)
    snap = sbx.snapshot(name="to carry")
    snapshots.append(snap)
    seen: list[int] = []
    target = tmp_path / "snap.tar"
    size = snap.export(target, progress=seen.append)
    assert size == target.stat().st_size > 0 and seen[-1] == size

    imported = client.snapshots.import_(target, progress=seen.append)
    snapshots.append(imported)
    assert imported.id != snap.id and imported.info.sandbox_id is None and imported.name == "to carry"
    (fork,) = imported.fork()
    made.append(fork)
    assert fork.files.read("marker.txt") == marker.encode()

    with pytest.raises(SandboxdError):
        client.snapshots.import_(b"not a tar at all")


def test_another_tenant_cannot_see_or_fork_a_snapshot(
    sbx: Sandbox, other_tenant: Client, snapshots: list[Snapshot]
) -> None:
    snap = sbx.snapshot()
    snapshots.append(snap)
    with pytest.raises(NotFound):
        other_tenant.snapshots.get(snap.id)
    with pytest.raises(NotFound):
        other_tenant.snapshots.fork(snap.id)
    assert snap.id not in {s.id for s in other_tenant.snapshots.list()}


async def test_async_twin_snapshot_fork_hibernate(aclient: AsyncClient) -> None:
    async with aclient.sandboxes.create(labels={"suite": "sdk-async"}) as sbx:
        await sbx.files.write("a.txt", "async")
        snap = await sbx.snapshot(name="async")
        try:
            (fork,) = await snap.fork(1)
            async with fork:
                assert await fork.files.read("a.txt") == b"async"
            assert (await sbx.hibernate()).state == "hibernated"
            assert (await sbx.resume()).state == "running"
            changes = await sbx.changes(since=snap, path="/workspace")
            assert changes.changes == []
        finally:
            await sbx.delete()
            await snap.delete(force=True)
