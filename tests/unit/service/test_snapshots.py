"""SnapshotService with a fake engine: atomic creation, dependents, restore, forks, reconciliation."""

from __future__ import annotations

import pytest

from sandboxd.errors import Conflict, NotFound, RuntimeFailure
from sandboxd.models import CreateSandbox, CreateSnapshot, ForkRequest
from sandboxd.service import images
from tests.unit.service.image_fakes import ALICE, BASE, BOB, INSTANCE, WakeAgent, build


@pytest.fixture
def parts(tmp_path):
    sandboxes, snapshots, runtime, store, audit = build(tmp_path)
    yield sandboxes, snapshots, runtime, store
    store.close()


def actions(store, action):
    return [r for r in store.query_audit(None, None, action, None, None, 100, None)]


async def test_snapshot_commits_and_keeps_env_values_out_of_the_image(parts) -> None:
    sandboxes, snapshots, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox(env={"API_TOKEN": "tok-123", "PATH": "/mine"}))
    runtime.written[sandbox.container_id] = 500
    snap = await snapshots.create(ALICE, sandbox.id, CreateSnapshot(name="s", labels={"k": "v"}))
    assert snap.state == "ready" and snap.image == images.snapshot_image(snap.id)
    assert snap.size_bytes == 500 and snap.total_bytes == 1500
    (_, image, env), = runtime.commits
    assert image == snap.image
    assert env == ["API_TOKEN=", "PATH=/bin"], "each sandbox variable takes the value underneath, or none"
    assert [r.args["snapshot_id"] for r in actions(store, "snapshot.create")] == [snap.id]


async def test_failed_commit_leaves_no_row_and_no_image(parts) -> None:
    sandboxes, snapshots, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    runtime.fail_commit = True
    with pytest.raises(RuntimeFailure):
        await snapshots.create(ALICE, sandbox.id, CreateSnapshot())
    assert store.list_snapshots() == []
    assert set(runtime.image_table) == {BASE}
    assert [r.result for r in actions(store, "snapshot.create")] == ["error"]


async def test_snapshot_of_a_hibernated_sandbox_is_a_new_name_for_its_image(parts) -> None:
    sandboxes, snapshots, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    await sandboxes.hibernate(ALICE, sandbox.id)
    commits = len(runtime.commits)
    snap = await snapshots.create(ALICE, sandbox.id, CreateSnapshot())
    assert len(runtime.commits) == commits, "no container to commit; the hibernation image is tagged"
    assert runtime.image_table[snap.image] == runtime.image_table[images.hibernation_image(sandbox.id)]


async def test_other_tenants_and_malformed_ids(parts) -> None:
    sandboxes, snapshots, _, _ = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    snap = await snapshots.create(ALICE, sandbox.id, CreateSnapshot())
    with pytest.raises(NotFound):
        snapshots.get(BOB, snap.id)
    with pytest.raises(NotFound):
        await snapshots.create(BOB, sandbox.id, CreateSnapshot())
    assert snapshots.list(BOB) == []


async def test_delete_refused_while_forks_depend_unless_forced(parts) -> None:
    sandboxes, snapshots, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    snap = await snapshots.create(ALICE, sandbox.id, CreateSnapshot())
    (fork,) = await snapshots.fork(ALICE, snap.id, ForkRequest(count=1))
    assert fork.spec["snapshot_id"] == snap.id and fork.image == snap.image
    child = await snapshots.create(ALICE, fork.id, CreateSnapshot())
    assert child.parent_id == snap.id
    with pytest.raises(Conflict) as refused:
        await snapshots.delete(ALICE, snap.id)
    assert refused.value.details == {"sandboxes": [fork.id], "snapshots": [child.id]}
    await snapshots.delete(ALICE, snap.id, force=True)
    assert store.get_snapshot(snap.id) is None
    assert store.get_snapshot(child.id).parent_id is None, "children are re-parented to the deleted one's parent"
    assert snap.image in runtime.image_table, "the engine keeps an image a container still runs from"


async def test_fork_inherits_settings_and_is_all_or_nothing(parts) -> None:
    sandboxes, snapshots, runtime, store = parts
    sandbox = await sandboxes.create(
        ALICE, CreateSandbox(env={"A": "1"}, memory_mb=256, on_wake="serve", idle_timeout_s=60)
    )
    snap = await snapshots.create(ALICE, sandbox.id, CreateSnapshot())
    forks = await snapshots.fork(ALICE, snap.id, ForkRequest(count=3, labels={"f": "1"}))
    assert len({f.id for f in forks}) == 3
    for fork in forks:
        assert fork.spec["limits"]["memory_mb"] == 256 and fork.spec["env"] == {"A": "1"}
        assert fork.spec["idle_timeout_s"] == 60 and fork.labels == {"f": "1"}
    assert WakeAgent.started.count(["bash", "-c", "serve"]) == 3, "forks start their services like a wake"

    runtime.fail_create = True
    before = {s.id for s in store.list_sandboxes()}
    with pytest.raises(Exception):
        await snapshots.fork(ALICE, snap.id, ForkRequest(count=2))
    assert {s.id for s in store.list_sandboxes()} == before


async def test_restore_switches_the_filesystem_and_keeps_the_id(parts) -> None:
    sandboxes, snapshots, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox(on_wake="serve"))
    snap = await snapshots.create(ALICE, sandbox.id, CreateSnapshot())
    old_container = sandbox.container_id
    restored = await snapshots.restore(ALICE, sandbox.id, snap.id)
    assert restored.id == sandbox.id and restored.state == "running"
    assert old_container not in runtime.containers
    assert runtime.specs[restored.container_id].image == snap.image
    assert restored.spec["snapshot_id"] == snap.id
    assert WakeAgent.started == [["bash", "-c", "serve"]]


async def test_reconcile_removes_unfinished_snapshots(parts) -> None:
    sandboxes, snapshots, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    snap = await snapshots.create(ALICE, sandbox.id, CreateSnapshot())
    store.update_snapshot(snap.id, state="creating")  # as if the daemon died mid-commit
    assert await snapshots.reconcile() == {"snapshots_removed": 1}
    assert store.list_snapshots() == []
    assert snap.image not in runtime.image_table


async def test_garbage_collection_drops_only_unneeded_names(parts) -> None:
    sandboxes, snapshots, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    kept = await snapshots.create(ALICE, sandbox.id, CreateSnapshot())
    runtime.image_table["sandboxd-snapshot:snp_orphanorphanorphanor"] = runtime.image_table[kept.image]
    runtime.image_table["unrelated:tag"] = runtime.image_table[kept.image]
    dropped = await snapshots.collect_garbage(INSTANCE)
    assert dropped == 1
    assert kept.image in runtime.image_table and "unrelated:tag" in runtime.image_table
    assert "sandboxd-snapshot:snp_orphanorphanorphanor" not in runtime.image_table
