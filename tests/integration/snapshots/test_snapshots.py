"""Snapshots of a live sandbox: taken, listed, forked, rolled back to, compared and deleted."""

from __future__ import annotations

import docker
import httpx

from tests.integration.snapshots.conftest import Api


def test_snapshot_is_listed_with_its_source_and_size(api: Api, docker_client: docker.DockerClient) -> None:
    sid = api.create()["id"]
    api.out(sid, "head -c 5000000 /dev/urandom > /workspace/five-mb")
    snap = api.snapshot(sid, name="after download", labels={"step": "1"})
    assert snap["state"] == "ready" and snap["sandbox_id"] == sid and snap["parent_id"] is None
    assert 5_000_000 <= snap["size_bytes"] < 6_000_000, "a snapshot stores what changed, not the whole image"
    assert snap["total_bytes"] > snap["size_bytes"]
    assert api.ok(api.c.get(f"/v1/snapshots/{snap['id']}"))["name"] == "after download"
    listed = api.ok(api.c.get("/v1/snapshots", params={"label": "step=1"}))["snapshots"]
    assert [s["id"] for s in listed] == [snap["id"]]
    image = docker_client.images.get(snap["image"])
    assert image.labels.get("org.sandboxd.managed") == "", "a snapshot's image never passes for a sandbox"
    # The sandbox carries on.
    assert api.state(sid) == "running"
    assert api.out(sid, "echo still here") == "still here\n"


def test_fork_three_that_diverge(api: Api) -> None:
    sid = api.create(env={"ROLE": "origin"})["id"]
    api.out(sid, "echo shared > /workspace/base.txt")
    snap = api.snapshot(sid)
    forks = api.ok(api.c.post(f"/v1/snapshots/{snap['id']}/fork", json={"count": 3, "labels": {"forked": "yes"}}), 201)[
        "sandboxes"
    ]
    ids = [f["id"] for f in forks]
    assert len(set(ids)) == 3 and sid not in ids
    for n, fid in enumerate(ids):
        assert api.out(fid, "cat /workspace/base.txt; echo $ROLE") == "shared\norigin\n"
        api.out(fid, f"echo {n} > /workspace/mine.txt")
    assert [api.out(fid, "cat /workspace/mine.txt") for fid in ids] == ["0\n", "1\n", "2\n"]
    assert api.sh(sid, "test -e /workspace/mine.txt")["exit_code"] == 1, "the origin does not see its forks' changes"
    for fid in ids:
        created = api.audit(fid, "sandbox.create")
        assert len(created) == 1, "each fork has an audit trail of its own"
    # Snapshots of a fork are increments on the fork's snapshot.
    child = api.snapshot(ids[0])
    assert child["parent_id"] == snap["id"]
    assert child["size_bytes"] < 1_000_000


def test_roll_back_to_a_snapshot_keeps_the_id(api: Api) -> None:
    sid = api.create()["id"]
    api.out(sid, "echo good > /workspace/state.txt")
    snap = api.snapshot(sid, name="good")
    api.out(sid, "echo broken > /workspace/state.txt; rm -rf ~/.profile; touch /workspace/junk")
    restored = api.ok(api.c.post(f"/v1/sandboxes/{sid}/restore", json={"snapshot_id": snap["id"]}))
    assert restored["id"] == sid and restored["state"] == "running"
    assert api.out(sid, "cat /workspace/state.txt; ls /workspace") == "good\nstate.txt\n"
    assert api.sh(sid, "test -e ~/.profile")["exit_code"] == 0
    records = api.audit(sid, "sandbox.restore")
    assert records and records[-1]["args"]["snapshot_id"] == snap["id"]


def test_delete_refused_while_sandboxes_depend_on_it(api: Api, docker_client: docker.DockerClient) -> None:
    sid = api.create()["id"]
    snap = api.snapshot(sid)
    fork = api.ok(api.c.post(f"/v1/snapshots/{snap['id']}/fork", json={"count": 1}), 201)["sandboxes"][0]
    refused = api.c.delete(f"/v1/snapshots/{snap['id']}")
    assert refused.status_code == 409
    assert fork["id"] in refused.json()["details"]["sandboxes"]
    assert api.c.delete(f"/v1/snapshots/{snap['id']}", params={"force": "true"}).status_code == 204
    assert api.c.get(f"/v1/snapshots/{snap['id']}").status_code == 404
    # Forced, it is gone from view while the fork keeps running on the shared layers.
    assert api.out(fork["id"], "echo alive") == "alive\n"
    api.delete(fork["id"])
    unused = api.snapshot(sid)
    assert api.c.delete(f"/v1/snapshots/{unused['id']}").status_code == 204
    try:
        docker_client.images.get(unused["image"])
        raise AssertionError("an unused snapshot's image is removed with it")
    except docker.errors.ImageNotFound:
        pass


def test_another_tenants_snapshot_is_not_found(api: Api, tenant_client: httpx.Client) -> None:
    sid = api.create()["id"]
    snap = api.snapshot(sid)
    assert tenant_client.get(f"/v1/snapshots/{snap['id']}").status_code == 404
    assert tenant_client.delete(f"/v1/snapshots/{snap['id']}").status_code == 404
    assert tenant_client.post(f"/v1/snapshots/{snap['id']}/fork", json={"count": 1}).status_code == 404
    assert tenant_client.post(f"/v1/sandboxes/{sid}/snapshots", json={}).status_code == 404
    assert tenant_client.post(f"/v1/sandboxes/{sid}/hibernate").status_code == 404
    assert snap["id"] not in {s["id"] for s in tenant_client.get("/v1/snapshots").json()["snapshots"]}


def test_changes_between_snapshots_and_since_a_snapshot(api: Api) -> None:
    sid = api.create()["id"]
    api.out(sid, "printf 'a\\nb\\n' > /workspace/edit.txt; echo gone > /workspace/gone.txt; echo same > /workspace/same.txt")
    first = api.snapshot(sid)
    api.out(sid, "printf 'a\\nB\\n' > /workspace/edit.txt; rm /workspace/gone.txt; mkdir /workspace/new; head -c 3000 /dev/zero > /workspace/new/bin.dat")
    second = api.snapshot(sid)

    between = api.ok(
        api.c.get(f"/v1/snapshots/{first['id']}/changes", params={"to": second["id"], "path": "/workspace", "diff": "true"})
    )
    by_path = {c["path"]: c for c in between["changes"]}
    assert set(by_path) == {"/workspace/edit.txt", "/workspace/gone.txt", "/workspace/new", "/workspace/new/bin.dat"}
    assert by_path["/workspace/edit.txt"]["change"] == "modified"
    assert "-b\n+B\n" in by_path["/workspace/edit.txt"]["diff"]
    assert by_path["/workspace/gone.txt"]["change"] == "deleted" and by_path["/workspace/gone.txt"]["size_before"] == 5
    assert by_path["/workspace/new"]["change"] == "added" and by_path["/workspace/new"]["type"] == "directory"
    assert by_path["/workspace/new/bin.dat"]["size_after"] == 3000
    assert by_path["/workspace/new/bin.dat"]["diff"] is None, "binary files get no text diff"

    api.out(sid, "echo later > /workspace/later.txt; echo tweak >> ~/.bashrc")
    live = api.ok(api.c.get(f"/v1/sandboxes/{sid}/changes", params={"since": second["id"]}))
    assert {(c["path"], c["change"]) for c in live["changes"]} == {
        ("/workspace/later.txt", "added"),
        ("/home/sandbox/.bashrc", "modified"),
    }
    # Without 'since' it compares with the latest snapshot of the sandbox.
    latest = api.ok(api.c.get(f"/v1/sandboxes/{sid}/changes", params={"path": "/workspace"}))
    assert latest["base"] == second["id"] and [c["path"] for c in latest["changes"]] == ["/workspace/later.txt"]
