"""Core benchmark: exec latency, create-to-first-exec, and throughput under concurrency.

Starts its own sandboxd on a temporary data directory (or uses SANDBOXD_URL and
SANDBOXD_API_KEY if both are set) and measures raw docker-py on the same engine
in the same run, so every figure comes with a ratio against plain Docker.

    .venv/bin/python bench/core.py [--exec-calls 500] [--soak-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import httpx
from throwaway import throwaway_sandboxd

IMAGE = os.environ.get("SANDBOXD_BENCH_IMAGE", "sandboxd/sandbox:latest")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def fmt(values: list[float]) -> str:
    return f"p50 {pct(values, 50):7.2f} ms   p99 {pct(values, 99):7.2f} ms   (n={len(values)})"


@contextmanager
def sandboxd() -> Iterator[tuple[str, str]]:
    if os.environ.get("SANDBOXD_URL") and os.environ.get("SANDBOXD_API_KEY"):
        yield os.environ["SANDBOXD_URL"], os.environ["SANDBOXD_API_KEY"]
        return
    with throwaway_sandboxd("sbxb") as daemon:
        yield daemon.url, daemon.key


def raw_docker(client: docker.DockerClient, exec_calls: int, creates: int) -> dict[str, list[float]]:
    exec_times, create_times = [], []
    container = client.containers.run(IMAGE, ["sleep", "infinity"], detach=True, user="1000")
    try:
        container.exec_run(["true"])
        for _ in range(min(exec_calls, 200)):
            t = time.perf_counter()
            container.exec_run(["true"])
            exec_times.append((time.perf_counter() - t) * 1000)
    finally:
        container.remove(force=True)
    for _ in range(creates):
        t = time.perf_counter()
        # Docker's default bridge network: sandboxes join a network too (the egress one).
        c = client.containers.run(IMAGE, ["sleep", "infinity"], detach=True, user="1000")
        c.exec_run(["true"])
        create_times.append((time.perf_counter() - t) * 1000)
        c.remove(force=True)
    return {"exec": exec_times, "create": create_times}


def api_latency(api: httpx.Client, exec_calls: int, creates: int) -> dict[str, list[float]]:
    sid = api.post("/v1/sandboxes", json={}).json()["id"]
    exec_times, create_times = [], []
    try:
        for _ in range(20):
            api.post(f"/v1/sandboxes/{sid}/exec", json={"argv": ["true"]})
        for _ in range(exec_calls):
            t = time.perf_counter()
            r = api.post(f"/v1/sandboxes/{sid}/exec", json={"argv": ["true"]})
            exec_times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200 and r.json()["exit_code"] == 0, r.text
    finally:
        api.delete(f"/v1/sandboxes/{sid}")
    for _ in range(creates):
        t = time.perf_counter()
        r = api.post("/v1/sandboxes", json={})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        api.post(f"/v1/sandboxes/{sid}/exec", json={"argv": ["true"]})
        create_times.append((time.perf_counter() - t) * 1000)
        api.delete(f"/v1/sandboxes/{sid}")
    return {"exec": exec_times, "create": create_times}


async def soak(url: str, key: str, sandboxes: int, clients: int, seconds: float) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as api:
        ids = [(await api.post("/v1/sandboxes", json={})).json()["id"] for _ in range(sandboxes)]
        latencies: list[float] = []
        errors: list[str] = []
        stop = time.monotonic() + seconds

        async def worker(n: int) -> None:
            sid = ids[n % len(ids)]
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    r = await api.post(f"/v1/sandboxes/{sid}/exec", json={"argv": ["true"]})
                    if r.status_code != 200 or r.json()["exit_code"] != 0:
                        errors.append(r.text[:200])
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                latencies.append((time.perf_counter() - t) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(clients)))
        elapsed = time.monotonic() - started
        for sid in ids:
            await api.delete(f"/v1/sandboxes/{sid}")
    return {"calls": len(latencies), "rate": len(latencies) / elapsed, "latencies": latencies, "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exec-calls", type=int, default=500)
    parser.add_argument("--creates", type=int, default=10)
    parser.add_argument("--soak-seconds", type=float, default=30)
    parser.add_argument("--soak-sandboxes", type=int, default=10)
    parser.add_argument("--soak-clients", type=int, default=20)
    args = parser.parse_args()

    client = docker.from_env()
    print(f"engine: Docker {client.version()['Version']}, image {IMAGE}, {os.cpu_count()} cores")
    print("raw docker-py ...", flush=True)
    raw = raw_docker(client, args.exec_calls, args.creates)
    with sandboxd() as (url, key):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
            print("sandboxd API ...", flush=True)
            ours = api_latency(api, args.exec_calls, args.creates)
        print(f"soak: {args.soak_sandboxes} sandboxes, {args.soak_clients} clients, {args.soak_seconds:g} s ...",
              flush=True)
        load = asyncio.run(soak(url, key, args.soak_sandboxes, args.soak_clients, args.soak_seconds))

    print()
    print(f"exec `true`    raw docker exec_run : {fmt(raw['exec'])}")
    print(f"exec `true`    sandboxd API        : {fmt(ours['exec'])}")
    print(f"               ratio p50 (ours/raw): {pct(ours['exec'], 50) / pct(raw['exec'], 50):.3f}   target p50 <= 10 ms")
    print(f"create+exec    raw run+exec_run    : {fmt(raw['create'])}")
    print(f"create+exec    sandboxd API        : {fmt(ours['create'])}")
    print(f"               ratio p50 (ours/raw): {pct(ours['create'], 50) / pct(raw['create'], 50):.3f}   target <= 1.3")
    lat = load["latencies"]
    print(f"soak           {load['calls']} execs, {load['rate']:.0f}/s, {fmt(lat)}, errors {len(load['errors'])}")
    for err in load["errors"][:5]:
        print(f"               error: {err}")
    client.close()
    return 1 if load["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
