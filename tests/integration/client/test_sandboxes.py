"""Sandbox lifecycle through the sync SDK against a real daemon."""

from __future__ import annotations

import secrets

import pytest

from sandboxd.client import Client, Sandbox
from sandboxd.errors import ImageNotFound, InvalidRequest, NotFound, Unauthenticated
from tests.integration.conftest import DaemonProcess


def test_context_manager_creates_then_deletes(client: Client) -> None:
    tag = secrets.token_hex(4)
    with client.sandboxes.create(labels={"run": tag}, cpus=0.5, memory_mb=256, env={"GREETING": "hi"}) as sbx:
        assert sbx.state == "running"
        assert (sbx.info.limits.cpus, sbx.info.limits.memory_mb) == (0.5, 256)
        assert [s.id for s in client.sandboxes.list(labels={"run": tag})] == [sbx.id]
        assert [s.id for s in client.sandboxes.list(labels={"run": tag}, state="stopped")] == []
        assert sbx.exec("echo $GREETING").stdout == "hi\n"
        assert sbx.refresh().state == "running"
    with pytest.raises(NotFound):
        client.sandboxes.get(sbx.id)
    assert client.sandboxes.list(labels={"run": tag}) == []


def test_keep_leaves_the_sandbox_and_connect_finds_it(client: Client, daemon: DaemonProcess) -> None:
    with client.sandboxes.create(keep=True) as kept:
        pass
    try:
        with Sandbox.connect(kept.id, client=client) as again:
            assert again.exec(["true"]).exit_code == 0
        assert client.sandboxes.get(kept.id).state == "running"
    finally:
        kept.delete()
    with pytest.raises(NotFound):
        client.sandboxes.get(kept.id)
    kept.delete()  # already gone: not an error


def test_bad_requests_raise_the_matching_errors(client: Client, daemon: DaemonProcess) -> None:
    with pytest.raises(ImageNotFound):
        client.sandboxes.create(image="no-such-image:never")
    with pytest.raises(InvalidRequest, match="cpus"):
        client.sandboxes.create(cpus=10_000)
    with Client(daemon.url, "sbd-wrong-" + "x" * 40) as stranger, pytest.raises(Unauthenticated):
        stranger.sandboxes.list()


def test_another_tenant_sees_nothing(sbx: Sandbox, other_tenant: Client) -> None:
    with pytest.raises(NotFound):
        other_tenant.sandboxes.get(sbx.id)
    assert sbx.id not in {s.id for s in other_tenant.sandboxes.list()}
