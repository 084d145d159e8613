"""Snapshot, restore, fork, hibernation and pause figures, each against raw docker-py on the same data.

Starts its own sandboxd on a temporary data directory and, in the same run, does
the same work with plain docker-py (commit, run from the image, exec_run), so each
figure comes with a ratio. Everything either side made is removed at the end.

    .venv/bin/python bench/snapshots.py            # 10 MB, 100 MB, 1 GB; 200 sandboxes
    .venv/bin/python bench/snapshots.py --quick    # 10 MB, 100 MB; 20 sandboxes

Targets (issue 4): wake from hibernation to first exec <= 1 s for 100 MB; snapshot
of 100 MB <= 2 s; pause to first exec <= 50 ms; a hibernated sandbox holds no
memory; 200 sandboxes hibernated and woken in turn with no failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import time
from collections.abc import Callable, Iterator

import docker
import httpx
from throwaway import throwaway_sandboxd

IMAGE = os.environ.get("SANDBOXD_BENCH_IMAGE", "sandboxd/sandbox:latest")
RAW_LABEL = "org.sandboxd.bench-raw"


class Daemon:
    def __init__(self, url: str, key: str) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600)

    def ok(self, response: httpx.Response) -> dict:
        if response.status_code >= 300:
            raise SystemExit(f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}")
        return response.json() if response.content else {}

    def post(self, path: str, body: dict | None = None) -> dict:
        return self.ok(self.client.post(path, json=body or {}))

    def sh(self, sid: str, command: str) -> dict:
        result = self.post(f"/v1/sandboxes/{sid}/exec", {"command": command, "timeout_s": 600})
        if result["exit_code"] != 0:
            raise SystemExit(f"exec failed in {sid}: {result}")
        return result



@contextlib.contextmanager
def sandboxd() -> Iterator[Daemon]:
    with throwaway_sandboxd("sbxs") as throwaway:
        daemon = Daemon(throwaway.url, throwaway.key)
        try:
            yield daemon
        finally:
            daemon.client.close()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fill(mb: int) -> str:
    # Random data in 10 MB files: nothing compresses or deduplicates it.
    return f"mkdir -p /workspace/data && for i in $(seq 1 {max(mb // 10, 1)}); do head -c {min(mb, 10)}M /dev/urandom > /workspace/data/$i; done"


# --- raw docker-py ---------------------------------------------------------------------------


class Raw:
    def __init__(self) -> None:
        self.client = docker.from_env()
        self.images: list[str] = []

    def run(self, image: str) -> docker.models.containers.Container:
        # The limits a sandbox gets by default: a memory limit also caps the page cache, which
        # decides how much of a large commit is read back from disk.
        return self.client.containers.run(
            image, ["sleep", "infinity"], detach=True, user="1000", network_mode="none", labels={RAW_LABEL: "yes"},
            mem_limit="1g", memswap_limit="1g", nano_cpus=10**9, pids_limit=512,
        )

    @staticmethod
    def exec_when_ready(container) -> None:
        # The engine may refuse an exec for a moment after unpause returns; sandboxd retries too.
        deadline = time.monotonic() + 5
        while True:
            try:
                container.exec_run(["true"])
                return
            except docker.errors.APIError:
                if time.monotonic() > deadline:
                    raise

    def commit(self, container) -> str:
        tag = f"sandboxd-bench-raw:{secrets.token_hex(6)}"
        container.commit(*tag.split(":"))
        self.images.append(tag)
        return tag

    def close(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": RAW_LABEL}):
            container.remove(force=True)
        for tag in self.images:
            with contextlib.suppress(docker.errors.APIError):
                self.client.images.remove(tag, force=True)
        self.client.close()


# --- the figures -----------------------------------------------------------------------------


rows: list[tuple[str, float, float | None]] = []


def report(name: str, ours_s: float, raw_s: float | None) -> None:
    rows.append((name, ours_s, raw_s))
    ratio = f"{ours_s / raw_s:5.2f}x" if raw_s else "   -  "
    raw_text = f"{raw_s * 1000:9.1f} ms" if raw_s is not None else "        -   "
    print(f"  {name:<44} {ours_s * 1000:9.1f} ms   raw {raw_text}   {ratio}", flush=True)


def by_size(daemon: Daemon, raw: Raw, mb: int) -> None:
    sid = daemon.post("/v1/sandboxes")["id"]
    daemon.sh(sid, fill(mb))
    snap: dict = {}
    ours = timed(lambda: snap.update(daemon.post(f"/v1/sandboxes/{sid}/snapshots", {"name": f"{mb}MB"})))
    container = raw.run(IMAGE)
    container.exec_run(["sh", "-c", fill(mb)])
    tag: list[str] = []
    report(f"snapshot, {mb} MB", ours, timed(lambda: tag.append(raw.commit(container))))

    daemon.sh(sid, "rm -rf /workspace/data")
    ours = timed(lambda: (daemon.post(f"/v1/sandboxes/{sid}/restore", {"snapshot_id": snap["id"]}), daemon.sh(sid, "true")))

    def raw_restore() -> None:
        container.remove(force=True)
        raw.run(tag[0]).exec_run(["true"])

    report(f"restore + first exec, {mb} MB", ours, timed(raw_restore))

    forked: list[str] = []

    def fork() -> None:
        forked.append(daemon.post(f"/v1/snapshots/{snap['id']}/fork", {"count": 1})["sandboxes"][0]["id"])
        daemon.sh(forked[0], "true")

    report(f"fork + first exec, {mb} MB", timed(fork), timed(lambda: raw.run(tag[0]).exec_run(["true"])))

    # Hibernation of a sandbox whose data sits in its writable layer, as after a day's work.
    hid = daemon.post("/v1/sandboxes")["id"]
    daemon.sh(hid, fill(mb))
    ours_hibernate = timed(lambda: daemon.post(f"/v1/sandboxes/{hid}/hibernate"))
    ours_wake = timed(lambda: daemon.sh(hid, "true"))
    sleeper = raw.run(IMAGE)
    sleeper.exec_run(["sh", "-c", fill(mb)])
    sleeping: list[str] = []

    def raw_hibernate() -> None:
        sleeping.append(raw.commit(sleeper))
        sleeper.remove(force=True)

    report(f"hibernate, {mb} MB", ours_hibernate, timed(raw_hibernate))
    report(f"hibernate -> first exec (wake), {mb} MB", ours_wake, timed(lambda: raw.run(sleeping[0]).exec_run(["true"])))
    forked.append(hid)
    for s in (sid, *forked):
        daemon.client.delete(f"/v1/sandboxes/{s}")
    daemon.client.delete(f"/v1/snapshots/{snap['id']}", params={"force": "true"})


def pause_latency(daemon: Daemon, raw: Raw, rounds: int = 10) -> None:
    sid = daemon.post("/v1/sandboxes")["id"]
    daemon.sh(sid, "true")
    ours = []
    for _ in range(rounds):
        daemon.post(f"/v1/sandboxes/{sid}/pause")
        ours.append(timed(lambda: daemon.sh(sid, "true")))
    container = raw.run(IMAGE)
    theirs = []
    for _ in range(rounds):
        container.pause()
        theirs.append(timed(lambda: (container.unpause(), raw.exec_when_ready(container))))
    report(f"pause -> first exec (median of {rounds})", statistics.median(ours), statistics.median(theirs))
    daemon.client.delete(f"/v1/sandboxes/{sid}")


def memory(daemon: Daemon, raw: Raw) -> None:
    sid = daemon.post("/v1/sandboxes")["id"]
    daemon.sh(sid, "true")
    client = raw.client
    running = client.containers.get(f"sandboxd-{sid}").stats(stream=False)["memory_stats"].get("usage", 0)
    daemon.post(f"/v1/sandboxes/{sid}/hibernate")
    left = client.containers.list(all=True, filters={"label": f"org.sandboxd.sandbox-id={sid}"})
    held = sum(c.stats(stream=False)["memory_stats"].get("usage", 0) for c in left)
    print(f"  memory: running idle sandbox {running / 2**20:.1f} MiB; hibernated: {len(left)} containers, {held} bytes")
    daemon.client.delete(f"/v1/sandboxes/{sid}")


def fleet(daemon: Daemon, count: int) -> None:
    ids: list[str] = []
    failures = 0
    hibernate_times, wake_times = [], []
    started = time.perf_counter()
    for n in range(count):
        try:
            sid = daemon.post("/v1/sandboxes", {"labels": {"fleet": "yes"}})["id"]
            ids.append(sid)
            daemon.sh(sid, f"echo {n} > /workspace/n")
            hibernate_times.append(timed(lambda: daemon.post(f"/v1/sandboxes/{sid}/hibernate")))
        except SystemExit as exc:
            failures += 1
            print(f"  fleet: sandbox {n}: {exc}")
    for n, sid in enumerate(ids):
        try:
            result: dict = {}
            wake_times.append(timed(lambda: result.update(daemon.sh(sid, "cat /workspace/n"))))
            if result["stdout"].strip() != str(n):
                failures += 1
                print(f"  fleet: {sid} woke with {result['stdout']!r}, expected {n}")
            daemon.post(f"/v1/sandboxes/{sid}/hibernate")
        except SystemExit as exc:
            failures += 1
            print(f"  fleet: {sid}: {exc}")
    elapsed = time.perf_counter() - started
    asleep = len(daemon.ok(daemon.client.get("/v1/sandboxes", params={"state": "hibernated"}))["sandboxes"])
    print(
        f"  fleet of {count}: {failures} failures, {asleep} asleep at the end, {elapsed:.0f} s in all; "
        f"hibernate p50 {statistics.median(hibernate_times) * 1000:.0f} ms, "
        f"wake -> exec p50 {statistics.median(wake_times) * 1000:.0f} ms, "
        f"p99 {sorted(wake_times)[int(0.99 * (len(wake_times) - 1))] * 1000:.0f} ms"
    )
    for sid in ids:
        daemon.client.delete(f"/v1/sandboxes/{sid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 MB and 100 MB only; a fleet of 20")
    parser.add_argument("--fleet", type=int, default=None, help="sandboxes hibernated and woken in turn")
    args = parser.parse_args()
    sizes = [10, 100] if args.quick else [10, 100, 1000]
    count = args.fleet if args.fleet is not None else (20 if args.quick else 200)
    raw = Raw()
    try:
        with sandboxd() as daemon:
            print("figure                                          sandboxd              raw docker-py    ratio")
            for mb in sizes:
                by_size(daemon, raw, mb)
            pause_latency(daemon, raw)
            memory(daemon, raw)
            fleet(daemon, count)
    finally:
        raw.close()


if __name__ == "__main__":
    main()
