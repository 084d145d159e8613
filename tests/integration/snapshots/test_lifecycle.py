"""The idle reaper: each idle action fires on time and is audited with its reason; use keeps a sandbox awake."""

from __future__ import annotations

import threading
import time

import docker
import pytest

from tests.integration.snapshots.conftest import Api, wait_for


def reaped(api: Api, sid: str, action: str) -> dict:
    records = [r for r in api.audit(sid, action) if r["key_id"] is None]
    return records[-1] if records else {}


@pytest.mark.parametrize(("action", "state"), [("pause", "paused"), ("hibernate", "hibernated")])
def test_idle_action_fires_and_is_audited(api: Api, action: str, state: str) -> None:
    sid = api.create(idle_timeout_s=1, idle_action=action)["id"]
    api.out(sid, "echo data > /workspace/kept")
    wait_for(lambda: api.state(sid) == state, timeout=15, what=f"the reaper to {action}")
    record = wait_for(lambda: reaped(api, sid, f"sandbox.{action}"), timeout=5, what="the audit record")
    assert record["result"] == "ok" and record["args"]["reason"].startswith("idle ")
    assert "timeout 1s" in record["args"]["reason"]
    # The next call wakes it, everything intact.
    assert api.out(sid, "cat /workspace/kept") == "data\n"


def test_idle_delete_only_when_asked_for(api: Api, docker_client: docker.DockerClient) -> None:
    sid = api.create(idle_timeout_s=1, idle_action="delete")["id"]
    wait_for(lambda: api.c.get(f"/v1/sandboxes/{sid}").status_code == 404, timeout=15, what="the reaper to delete")
    record = reaped(api, sid, "sandbox.delete")
    assert record and "idle" in record["args"]["reason"]
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(f"sandboxd-{sid}")


def test_max_lifetime_deletes(api: Api) -> None:
    sid = api.create(max_lifetime_s=2)["id"]
    wait_for(lambda: api.c.get(f"/v1/sandboxes/{sid}").status_code == 404, timeout=15, what="the lifetime to run out")
    assert "max lifetime 2s" in reaped(api, sid, "sandbox.delete")["args"]["reason"]


def test_defaults_never_delete_and_hibernate_after_a_while(api: Api) -> None:
    sid = api.create()["id"]
    policy = api.ok(api.c.get(f"/v1/sandboxes/{sid}/lifecycle"))
    assert policy["idle_action"] == "hibernate" and policy["idle_timeout_s"] >= 600
    assert policy["max_lifetime_s"] is None
    assert policy["source"]["idle_action"] == "server"


def test_a_running_call_keeps_a_sandbox_busy(api: Api) -> None:
    sid = api.create(idle_timeout_s=1)["id"]
    done: dict = {}

    def long_call() -> None:
        done["result"] = api.sh(sid, "sleep 4; echo finished")

    worker = threading.Thread(target=long_call)
    worker.start()
    wait_for(lambda: api.ok(api.c.get(f"/v1/sandboxes/{sid}/lifecycle"))["busy"], timeout=5, what="the call to start")
    worker.join(30)
    assert done["result"]["stdout"] == "finished\n", "a call in flight is never cut short by the idle timeout"
    assert not reaped(api, sid, "sandbox.hibernate"), "no hibernation while the call ran"
    wait_for(lambda: api.state(sid) == "hibernated", timeout=15, what="hibernation once idle")


def test_keepalive_and_policy_update(api: Api) -> None:
    sid = api.create()["id"]
    updated = api.ok(api.c.patch(f"/v1/sandboxes/{sid}/lifecycle", json={"idle_timeout_s": 2, "idle_action": "pause"}))
    assert updated["idle_timeout_s"] == 2 and updated["source"]["idle_timeout_s"] == "sandbox"
    for _ in range(6):
        status = api.ok(api.c.post(f"/v1/sandboxes/{sid}/keepalive"))
        assert status["state"] == "running" and status["idle_for_s"] < 1
        threading.Event().wait(0.5)  # paced keep-alives, as a client would send them
    assert api.state(sid) == "running", "keep-alives every 0.5s hold off a 2s idle timeout"
    assert api.audit(sid, "sandbox.keepalive")
    wait_for(lambda: api.state(sid) == "paused", timeout=15, what="the pause once keep-alives stop")


def test_tenant_defaults_apply_to_sandboxes_without_their_own(api: Api, tenant_client, admin) -> None:
    tenant_id = tenant_client.get("/v1/lifecycle/defaults").json()["tenant_id"]
    assert tenant_client.put(f"/v1/tenants/{tenant_id}/lifecycle", json={"idle_timeout_s": 1}).status_code == 403
    response = admin.put(f"/v1/tenants/{tenant_id}/lifecycle", json={"idle_timeout_s": 1, "idle_action": "pause"})
    assert response.status_code == 200, response.text
    try:
        sid = tenant_client.post("/v1/sandboxes", json={}).json()["id"]
        try:
            policy = tenant_client.get(f"/v1/sandboxes/{sid}/lifecycle").json()
            assert policy["source"]["idle_timeout_s"] == "tenant" and policy["idle_action"] == "pause"
            wait_for(lambda: tenant_client.get(f"/v1/sandboxes/{sid}").json()["state"] == "paused", timeout=15)
        finally:
            tenant_client.delete(f"/v1/sandboxes/{sid}")
    finally:
        admin.put(f"/v1/tenants/{tenant_id}/lifecycle", json={})


def test_a_sandbox_working_in_the_background_is_not_idle(api: Api) -> None:
    sid = api.create(idle_timeout_s=1)["id"]
    job = api.ok(api.c.post(f"/v1/sandboxes/{sid}/processes", json={"command": "while :; do :; done"}), 201)
    # Five timeouts pass with no API call on the sandbox: its CPU use alone keeps it awake.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert api.state(sid) == "running", "a background job is long-running work, not idleness"
        time.sleep(0.2)
    api.ok(api.c.post(f"/v1/sandboxes/{sid}/processes/{job['id']}/signal", json={"signal": "KILL"}))
    wait_for(lambda: api.state(sid) == "hibernated", timeout=15, what="hibernation once the job ended")
