"""Egress across the daemon's own life and the sandbox's: proxy crashes, restarts, restores, forks."""

from __future__ import annotations

import os
import signal
import time

import docker
import httpx

from tests.integration.conftest import DaemonProcess
from tests.integration.egress.conftest import Shell, allow, wait_for_log
from tests.integration.egress.upstream import Upstream

BEARER = {"type": "header", "header": "Authorization", "template": "Bearer {value}"}


def proxy_pid(daemon: DaemonProcess) -> int | None:
    try:
        return int((daemon.data_dir / "egress" / "mitmdump.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def sandbox_ip(docker_client: docker.DockerClient, sandbox_id: str) -> str:
    container = docker_client.containers.get(f"sandboxd-{sandbox_id}")
    return next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]


def test_the_proxy_is_restarted_after_a_crash_and_sandboxes_carry_on(
    egress_daemon: DaemonProcess, upstream: Upstream, make_sandbox, sh: Shell
) -> None:
    sid = make_sandbox(egress=allow(upstream.address))["id"]
    url = f"{upstream.base}/ok"
    assert sh(sid, f"curl -sS {url}")["stdout"] == "ok"
    crashed = proxy_pid(egress_daemon)
    assert crashed is not None
    os.kill(crashed, signal.SIGKILL)
    killed_at = time.monotonic()
    while True:
        result = sh(sid, f"curl -sS --max-time 5 {url}")
        if result["stdout"] == "ok":
            break
        assert time.monotonic() - killed_at < 20, f"the proxy did not come back: {result}"
        time.sleep(0.1)
    assert proxy_pid(egress_daemon) not in (None, crashed)


def test_the_egress_log_keeps_each_request_once_across_a_daemon_crash(
    api: httpx.Client, egress_daemon: DaemonProcess, upstream: Upstream, make_sandbox, sh: Shell
) -> None:
    sid = make_sandbox(egress=allow(upstream.address))["id"]
    sh(sid, f"for i in 1 2 3 4 5; do curl -sS -o /dev/null {upstream.base}/n$i; done")
    # Killed outright, maybe before it read those lines; its proxy is orphaned, still running.
    orphan = proxy_pid(egress_daemon)
    egress_daemon.kill()
    egress_daemon.start()
    assert orphan is not None and not os.path.exists(f"/proc/{orphan}"), "the orphaned proxy was not ended"
    assert proxy_pid(egress_daemon) not in (None, orphan)
    sh(sid, f"curl -sS -o /dev/null {upstream.base}/n6")
    # Lines are ingested in file order: once the last is in, a duplicate of any earlier one would be too.
    records = wait_for_log(api, sid, lambda r: any(x["path"] == "/n6" for x in r))
    assert sorted(r["path"] for r in records) == [f"/n{i}" for i in range(1, 7)]
    assert len({r["id"] for r in records}) == 6


def test_a_restored_sandbox_gets_a_new_address_and_new_placeholders(
    api: httpx.Client, upstream: Upstream, make_secret, make_sandbox, sh: Shell, docker_client: docker.DockerClient
) -> None:
    value = make_secret("RESTORE_TOKEN", [upstream.address], inject=BEARER)
    sid = make_sandbox(secrets=["RESTORE_TOKEN"], egress=allow(upstream.address))["id"]
    before_ip = sandbox_ip(docker_client, sid)
    before = sh(sid, "printf %s \"$RESTORE_TOKEN\"")["stdout"]
    snapshot = api.post(f"/v1/sandboxes/{sid}/snapshots", json={"name": "egress"})
    assert snapshot.status_code == 201, snapshot.text
    snapshot_id = snapshot.json()["id"]
    try:
        restored = api.post(f"/v1/sandboxes/{sid}/restore", json={"snapshot_id": snapshot_id})
        assert restored.status_code == 200, restored.text
        after = sh(sid, "printf %s \"$RESTORE_TOKEN\"")["stdout"]
        assert after.startswith("sandboxd-ph-") and after != before
        assert sandbox_ip(docker_client, sid) != before_ip
        upstream.clear()
        sh(sid, f"curl -sS -H \"X-Old: {before}\" -H \"X-New: $RESTORE_TOKEN\" {upstream.base}/echo")
        sent = upstream.received[-1].headers
        assert sent["x-new"] == value and sent["x-old"] == before, "only the current placeholder stands for the value"

        forked = api.post(f"/v1/snapshots/{snapshot_id}/fork", json={"count": 1})
        assert forked.status_code == 201, forked.text
        fork_id = forked.json()["sandboxes"][0]["id"]
        try:
            assert sandbox_ip(docker_client, fork_id) not in (before_ip, sandbox_ip(docker_client, sid))
            mine = sh(fork_id, "printf %s \"$RESTORE_TOKEN\"")["stdout"]
            assert mine.startswith("sandboxd-ph-") and mine not in (before, after), "a fork has placeholders of its own"
            upstream.clear()
            # The fork inherits the source's rules and secret names; the source's placeholder is
            # nothing to the proxy there, only the fork's own stands for the value.
            sh(fork_id, f"curl -sS --max-time 10 -H \"X-Old: {after}\" -H \"X-Mine: $RESTORE_TOKEN\" {upstream.base}/echo")
            sent = upstream.received[-1].headers
            assert sent["x-mine"] == value and sent["x-old"] == after
            image_env = docker_client.images.get(f"sandboxd-snapshot:{snapshot_id}").attrs["Config"]["Env"]
            assert not [e for e in image_env if before in e or after in e], "no placeholder is baked into a snapshot"
        finally:
            api.delete(f"/v1/sandboxes/{fork_id}")
    finally:
        api.delete(f"/v1/snapshots/{snapshot_id}", params={"force": True})


def test_a_hibernated_sandbox_wakes_with_its_placeholders_and_its_image_holds_none(
    api: httpx.Client, upstream: Upstream, make_secret, make_sandbox, sh: Shell, docker_client: docker.DockerClient
) -> None:
    value = make_secret("SLEEPY_TOKEN", [upstream.address], inject=BEARER)
    sid = make_sandbox(secrets=["SLEEPY_TOKEN"], egress=allow(upstream.address))["id"]
    placeholder = sh(sid, "printf %s \"$SLEEPY_TOKEN\"")["stdout"]
    asleep = api.post(f"/v1/sandboxes/{sid}/hibernate")
    assert asleep.status_code == 200 and asleep.json()["state"] == "hibernated", asleep.text
    image_env = docker_client.images.get(f"sandboxd-hibernation:{sid}").attrs["Config"]["Env"]
    assert not [e for e in image_env if placeholder in e or e.startswith("HTTPS_PROXY=http")], image_env

    upstream.clear()
    woken = sh(sid, f"printf %s \"$SLEEPY_TOKEN\"; curl -sS -o /dev/null {upstream.base}/ok")
    assert woken["stdout"] == placeholder, "a sandbox keeps its placeholders across sleep"
    assert upstream.received[-1].headers["authorization"] == f"Bearer {value}"
