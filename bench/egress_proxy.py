"""Egress proxy benchmark: what the addons cost on top of plain mitmdump, and on top of no proxy.

Three paths to the same local HTTPS upstream (tests/integration/egress_proxy/harness.py):
direct, through plain ``mitmdump`` (no script), and through ``mitmdump -s
egress_proxy/addon.py`` with a sandbox that has a policy and one injected,
scrubbed secret. For each it measures

- small GETs over one kept-alive connection: requests/s, p50/p99 latency and
  the latency the proxy adds over direct;
- the same with several connections at once (mitmproxy runs on one core, so
  this is where per-request work shows);
- a 100 MiB download: time and the proxy's peak RSS growth.

    .venv/bin/python bench/egress_proxy.py [--requests 2000] [--concurrency 8] [--rounds 3]

Targets (issue 3): addons add <= 15 % over plain mitmdump; the download takes
<= 1.5x direct with RSS growth <= 50 MB.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.egress_proxy.harness import (  # noqa: E402
    ProxyProcess,
    RssSampler,
    Upstream,
    make_upstream_certs,
)

DOWNLOAD_BYTES = 100 * 1024 * 1024
SANDBOX = {
    "127.0.0.1": {
        "sandbox_id": "sbx_bench",
        "tenant_id": "tnt_bench",
        "policy": {"rules": [
            {"action": "deny", "host": "localhost", "path_prefix": "/admin", "name": "no admin"},
            {"action": "allow", "host": "localhost", "methods": ["GET", "POST"]},
        ]},
        "secrets": [{
            "name": "API_TOKEN",
            "placeholder": "sandboxd-ph-BenchBenchBench01",
            "value": "bench-secret-value-0123456789abcdef",
            "hosts": ["localhost"],
            "inject": {"type": "header", "header": "Authorization", "template": "Bearer {value}"},
        }],
    }
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class Route:
    """One way to reach the upstream: a client factory, and the proxy process on the way, if any."""

    name: str
    make_client: Callable[[], httpx.Client]
    proxy: ProxyProcess | None = None


@dataclass
class Result:
    rps: float
    p50: float
    p99: float
    cpu_us: float
    """Proxy CPU time per request, in microseconds (0 when direct): the least noisy cost figure."""


def proxy_cpu(proxy: ProxyProcess | None) -> float:
    return proxy.cpu_seconds() if proxy is not None else 0.0


def keepalive_run(route: Route, url: str, count: int) -> Result:
    latencies: list[float] = []
    with route.make_client() as c:
        for _ in range(50):
            c.get(url)
        cpu = proxy_cpu(route.proxy)
        started = time.perf_counter()
        for _ in range(count):
            t = time.perf_counter()
            response = c.get(url)
            latencies.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, response.text
        elapsed = time.perf_counter() - started
        cpu = proxy_cpu(route.proxy) - cpu
    return Result(count / elapsed, pct(latencies, 50), pct(latencies, 99), cpu / count * 1e6)


def concurrent_run(route: Route, url: str, count: int, workers: int) -> Result:
    latencies: list[float] = []
    lock = threading.Lock()
    per_worker = count // workers
    barrier = threading.Barrier(workers + 1)

    def work() -> None:
        mine: list[float] = []
        with route.make_client() as c:
            for _ in range(20):
                c.get(url)
            barrier.wait()
            for _ in range(per_worker):
                t = time.perf_counter()
                assert c.get(url).status_code == 200
                mine.append((time.perf_counter() - t) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    cpu = proxy_cpu(route.proxy)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = proxy_cpu(route.proxy) - cpu
    return Result(len(latencies) / elapsed, pct(latencies, 50), pct(latencies, 99), cpu / len(latencies) * 1e6)


def download(route: Route, url: str) -> tuple[float, float]:
    """Seconds for the download, and the proxy's peak RSS growth in MiB (0 when direct)."""
    with route.make_client() as c:
        c.get(url.replace("/big?", "/ok?"))
        sampler = RssSampler(route.proxy) if route.proxy is not None else None
        if sampler is not None:
            sampler.__enter__()
        try:
            started = time.perf_counter()
            received = 0
            with c.stream("GET", url) as response:
                for chunk in response.iter_raw():
                    received += len(chunk)
            elapsed = time.perf_counter() - started
        finally:
            if sampler is not None:
                sampler.__exit__(None, None, None)
    assert received == DOWNLOAD_BYTES, received
    return elapsed, (sampler.growth / 2**20 if sampler is not None else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="egress-bench-") as tmp:
        root = Path(tmp)
        certs = make_upstream_certs(root / "upstream")
        plain_dir, addon_dir = root / "plain", root / "addons"
        plain_dir.mkdir()
        addon_dir.mkdir()
        plain = ProxyProcess(plain_dir, certs.ca, addons=False)
        addons = ProxyProcess(addon_dir, certs.ca)
        addons.write_state(SANDBOX)
        with Upstream(certs) as upstream, plain, addons:
            base = f"https://localhost:{upstream.port}"
            upstream_trust = ssl.create_default_context(cafile=str(certs.ca))

            def via(proxy: ProxyProcess) -> Callable[[], httpx.Client]:
                trust = ssl.create_default_context(cafile=str(proxy.ca.sandbox_cert))
                return lambda: httpx.Client(proxy=proxy.url, verify=trust, trust_env=False, timeout=60)

            paths = [
                Route("direct", lambda: httpx.Client(verify=upstream_trust, trust_env=False, timeout=60)),
                Route("plain mitmdump", via(plain), plain),
                Route("mitmdump + addons", via(addons), addons),
            ]
            keepalive: dict[str, list[Result]] = {p.name: [] for p in paths}
            concurrent: dict[str, list[Result]] = {p.name: [] for p in paths}
            downloads: dict[str, list[tuple[float, float]]] = {p.name: [] for p in paths}
            for round_number in range(args.rounds):
                for p in paths:  # interleaved, so drift on the machine hits every path alike
                    keepalive[p.name].append(keepalive_run(p, f"{base}/ok", args.requests))
                    concurrent[p.name].append(concurrent_run(p, f"{base}/ok", args.requests, args.concurrency))
                    downloads[p.name].append(download(p, f"{base}/big?bytes={DOWNLOAD_BYTES}"))
                print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
            assert any(r.header("authorization") == "Bearer bench-secret-value-0123456789abcdef"
                       for r in upstream.received[-5:]), "the addon path really injected the secret"

    report(keepalive, concurrent, downloads, args)


def best(results: list[Result]) -> Result:
    """The median round by throughput: robust to one noisy round either way."""
    return sorted(results, key=lambda r: r.rps)[len(results) // 2]


def report(keepalive: dict[str, list[Result]], concurrent: dict[str, list[Result]],
           downloads: dict[str, list[tuple[float, float]]], args: argparse.Namespace) -> None:
    direct, plain, addons = "direct", "plain mitmdump", "mitmdump + addons"
    print(f"\nSmall HTTPS GETs, one kept-alive connection ({args.requests} requests, median of {args.rounds} rounds)")
    print(f"{'path':<20}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'added p50':>12}{'added p99':>12}{'proxy CPU/req':>15}")
    d = best(keepalive[direct])
    for name in (direct, plain, addons):
        r = best(keepalive[name])
        print(f"{name:<20}{r.rps:>10.0f}{r.p50:>10.2f}{r.p99:>10.2f}{r.p50 - d.p50:>12.2f}{r.p99 - d.p99:>12.2f}"
              f"{r.cpu_us:>12.0f} us")
    p, a = best(keepalive[plain]), best(keepalive[addons])
    print(f"addons vs plain mitmdump: throughput {a.rps / p.rps:.2f}x, "
          f"added p50 latency {(a.p50 - d.p50) / max(p.p50 - d.p50, 1e-9):.2f}x, "
          f"cost per request {1000 / a.rps - 1000 / p.rps:+.3f} ms ({(p.rps / a.rps - 1) * 100:+.1f} %)")

    print(f"\nSmall HTTPS GETs, {args.concurrency} connections at once")
    print(f"{'path':<20}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'proxy CPU/req':>15}")
    for name in (direct, plain, addons):
        r = best(concurrent[name])
        print(f"{name:<20}{r.rps:>10.0f}{r.p50:>10.2f}{r.p99:>10.2f}{r.cpu_us:>12.0f} us")
    pc, ac = best(concurrent[plain]), best(concurrent[addons])
    print(f"addons vs plain mitmdump: throughput {ac.rps / pc.rps:.2f}x ({(pc.rps / ac.rps - 1) * 100:+.1f} % time per request)")
    cpu_plain = statistics.median(r.cpu_us for r in keepalive[plain] + concurrent[plain])
    cpu_addons = statistics.median(r.cpu_us for r in keepalive[addons] + concurrent[addons])
    print(f"proxy CPU per request, all runs: plain {cpu_plain:.0f} us, addons {cpu_addons:.0f} us "
          f"({(cpu_addons / cpu_plain - 1) * 100:+.1f} %)")

    print("\n100 MiB download (median of rounds)")
    print(f"{'path':<20}{'seconds':>10}{'MiB/s':>10}{'vs direct':>11}{'RSS growth MiB':>16}")
    direct_seconds = statistics.median(s for s, _ in downloads[direct])
    for name in (direct, plain, addons):
        seconds = statistics.median(s for s, _ in downloads[name])
        growth = max(g for _, g in downloads[name])
        print(f"{name:<20}{seconds:>10.2f}{100 / seconds:>10.0f}{seconds / direct_seconds:>10.2f}x{growth:>16.1f}")


if __name__ == "__main__":
    main()
