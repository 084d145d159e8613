"""A sandbox that ignores the proxy gets no connection at all."""

from __future__ import annotations

import json
import socket

import docker
import httpx

from tests.integration.conftest import DaemonProcess
from tests.integration.egress.conftest import Shell
from tests.integration.egress.upstream import Upstream

# Tries each target directly (no proxy), all at once, and prints one JSON object: target -> outcome.
PROBE = r"""
import json, os, socket, sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit
proxy = urlsplit(os.environ["HTTPS_PROXY"])

def connect(spec):
    host, port = spec.rsplit(":", 1)
    host = host.replace("GATEWAY", proxy.hostname)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__

def resolve(_):
    try:
        socket.getaddrinfo("pypi.org", 443)
        return "resolved"
    except OSError as exc:
        return type(exc).__name__

def ask_resolver(_):
    # A DNS query straight to a public resolver, over UDP: no answer may come back.
    query = bytes.fromhex("abcd01000001000000000000") + b"\x04pypi\x03org\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(2)
        try:
            udp.sendto(query, ("1.1.1.1", 53))
            udp.recvfrom(512)
            return "answered"
        except OSError as exc:
            return type(exc).__name__

checks = [(spec, connect) for spec in sys.argv[1:]] + [("dns", resolve), ("udp dns", ask_resolver)]
with ThreadPoolExecutor(len(checks)) as pool:
    outcomes = pool.map(lambda check: check[1](check[0]), checks)
    results = dict(zip([name for name, _ in checks], outcomes))
results["proxy"] = f"{proxy.hostname}:{proxy.port}"
print(json.dumps(results))
"""


def probe(sh: Shell, sandbox_id: str, *targets: str) -> dict[str, str]:
    # One resolver attempt of one second: the answer (none) is the same, only sooner.
    command = "cat > /tmp/probe.py && RES_OPTIONS='timeout:1 attempts:1' python3 /tmp/probe.py " + " ".join(targets)
    result = sh(sandbox_id, command, stdin=PROBE)
    assert result["exit_code"] == 0, result
    return json.loads(result["stdout"])


def test_direct_connections_fail_and_only_the_proxy_port_answers(
    egress_daemon: DaemonProcess, upstream: Upstream, make_sandbox, sh: Shell, docker_client: docker.DockerClient
) -> None:
    target = make_sandbox()
    other = make_sandbox()
    # Something listening inside the other sandbox, on all its addresses.
    serving = sh(
        other["id"],
        "nohup python3 -m http.server 8000 >/dev/null 2>&1 & "
        "for i in $(seq 100); do curl -s -o /dev/null --noproxy '*' http://127.0.0.1:8000/ && echo up && break; "
        "sleep 0.05; done",
    )
    assert serving["stdout"] == "up\n", serving
    container = docker_client.containers.get(f"sandboxd-{other['id']}")
    other_ip = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]

    results = probe(
        sh, target["id"],
        "1.1.1.1:443",                              # raw TCP to a public address
        f"{upstream.address}:{upstream.port}",      # an HTTPS site, by IP, skipping the proxy
        "169.254.169.254:80",                       # cloud metadata
        f"{other_ip}:8000",                         # another sandbox
        f"GATEWAY:{egress_daemon.port}",            # sandboxd's own API, listening on 0.0.0.0 here
        f"GATEWAY:{upstream.port}",                 # any other service on the host
        "GATEWAY:22",
        "GATEWAY:3128",                             # the proxy: the one thing that answers
    )
    gateway = results["proxy"].rsplit(":", 1)[0]
    assert results.pop("GATEWAY:3128") == "connected", results
    assert results.pop("dns") != "resolved" and results.pop("udp dns") != "answered", results
    results.pop("proxy")
    assert "connected" not in results.values(), results

    # Controls: from the host, the same API port and service answer on that very address,
    # so it is the firewall, not an empty port, that the sandbox ran into.
    assert httpx.get(f"http://{gateway}:{egress_daemon.port}/v1/health", timeout=5).status_code == 200
    socket.create_connection((gateway, upstream.port), timeout=2).close()


def test_health_has_no_egress_warning_when_the_firewall_is_in_place(egress_daemon: DaemonProcess) -> None:
    health = httpx.get(f"{egress_daemon.url}/v1/health", timeout=5).json()
    assert not [w for w in health["warnings"] if "egress" in w], health
