"""Pause, hibernate and wake in SandboxService, with a fake engine: states, ordering and recovery."""

from __future__ import annotations

import pytest

from sandboxd.errors import Conflict, RuntimeFailure, SandboxUnavailable
from sandboxd.models import CreateSandbox
from sandboxd.service import images
from tests.unit.service.image_fakes import ALICE, WakeAgent, build


@pytest.fixture
def parts(tmp_path):
    sandboxes, _, runtime, store, _ = build(tmp_path)
    yield sandboxes, runtime, store
    store.close()


async def test_hibernate_removes_the_container_and_use_wakes_it(parts) -> None:
    sandboxes, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox(on_wake="start-db"))
    asleep = await sandboxes.hibernate(ALICE, sandbox.id)
    assert asleep.state == "hibernated" and asleep.container_id is None
    assert runtime.containers == {}
    assert asleep.spec["rootfs_image"] == images.hibernation_image(sandbox.id)

    woken, _ = await sandboxes.agent_for(ALICE, sandbox.id)
    assert woken.state == "running"
    assert runtime.specs[woken.container_id].image == images.hibernation_image(sandbox.id)
    assert WakeAgent.started == [["bash", "-c", "start-db"]]


async def test_a_failed_commit_leaves_the_sandbox_as_it_was(parts) -> None:
    sandboxes, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    runtime.fail_commit = True
    with pytest.raises(RuntimeFailure):
        await sandboxes.hibernate(ALICE, sandbox.id)
    assert store.get_sandbox(sandbox.id).state == "running"
    assert sandbox.container_id in runtime.containers


async def test_a_failed_wake_goes_back_to_sleep_intact(parts) -> None:
    sandboxes, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    await sandboxes.hibernate(ALICE, sandbox.id)
    runtime.fail_create = True
    with pytest.raises(SandboxUnavailable):
        await sandboxes.agent_for(ALICE, sandbox.id)
    record = store.get_sandbox(sandbox.id)
    assert record.state == "hibernated" and record.container_id is None
    assert images.hibernation_image(sandbox.id) in runtime.image_table
    runtime.fail_create = False
    assert (await sandboxes.resume(ALICE, sandbox.id)).state == "running"


async def test_pause_only_from_running_and_idempotent(parts) -> None:
    sandboxes, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    assert (await sandboxes.pause(ALICE, sandbox.id)).state == "paused"
    assert (await sandboxes.pause(ALICE, sandbox.id)).state == "paused"
    assert (await sandboxes.hibernate(ALICE, sandbox.id)).state == "hibernated", "a paused sandbox may hibernate"
    with pytest.raises(Conflict):
        await sandboxes.pause(ALICE, sandbox.id)


async def test_deleting_a_hibernated_sandbox_drops_its_image(parts) -> None:
    sandboxes, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    await sandboxes.hibernate(ALICE, sandbox.id)
    await sandboxes.delete(ALICE, sandbox.id)
    assert images.hibernation_image(sandbox.id) not in runtime.image_table


async def test_a_sandbox_whose_image_was_pruned_fails_clearly(parts) -> None:
    sandboxes, runtime, store = parts
    sandbox = await sandboxes.create(ALICE, CreateSandbox())
    await sandboxes.hibernate(ALICE, sandbox.id)
    del runtime.image_table[images.hibernation_image(sandbox.id)]
    with pytest.raises(SandboxUnavailable, match="was removed from the engine"):
        await sandboxes.agent_for(ALICE, sandbox.id)
    assert store.get_sandbox(sandbox.id).state == "failed"
