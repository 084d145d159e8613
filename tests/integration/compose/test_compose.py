"""The docker-compose stack: sandboxd and the egress proxy as services, a sandbox through them.

Brings the stack up under its own project name, port, network, bridge and subnet
(so it never collides with a stack a developer runs), and takes all of it down
again, volumes included. Uses the Compose v2 plugin where present, else Debian's
docker-compose 1.29 (scripts/setup.sh installs one).
"""

from __future__ import annotations

import http.server
import ipaddress
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from sandboxd.egress.firewall import Firewall, FirewallPlan
from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed; scripts/setup.sh installs one as root")


class Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from upstream\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def unused_subnet_prefix() -> str:
    """A 172.31.N.0/24 that no Docker network on this engine overlaps."""
    client = docker.from_env()
    try:
        taken = [
            ipaddress.ip_network(config["Subnet"])
            for network in client.networks.list()
            for config in (network.attrs.get("IPAM") or {}).get("Config") or []
            if config.get("Subnet")
        ]
    finally:
        client.close()
    for n in range(239, 100, -1):
        candidate = ipaddress.ip_network(f"172.31.{n}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return f"172.31.{n}"
    pytest.fail("no free 172.31.N.0/24 subnet for the compose test's sandbox network")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    project = "sbxdtest" + secrets.token_hex(2)
    port = free_port()
    key = "compose-test-" + secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "SANDBOXD_PORT": str(port),
        "SANDBOXD_API_KEY": key,
        "SANDBOXD_NETWORK": f"{project}-sandboxes",
        "SANDBOXD_BRIDGE": f"{project}0"[:15],
        "SANDBOXD_SUBNET": unused_subnet_prefix(),
        "SANDBOXD_SOCKET_DIR": f"/run/{project}-sockets",
    }
    compose = [*compose_command(), "-p", project, "-f", str(ROOT / "docker-compose.yml")]
    log = tmp_path_factory.mktemp("compose") / "compose.log"
    with open(log, "wb") as out:
        up = subprocess.run([*compose, "up", "-d", "--build"], env=env, stdout=out, stderr=out, timeout=900)
    url = f"http://127.0.0.1:{port}"
    try:
        assert up.returncode == 0, f"compose up failed; see {log}:\n{log.read_text()[-3000:]}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "sandboxd in compose did not answer within 90 s"
            time.sleep(0.5)
        yield url, key
    finally:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
            try:
                for sbx in api.get("/v1/sandboxes").json()["sandboxes"]:
                    api.delete(f"/v1/sandboxes/{sbx['id']}")
            except (httpx.HTTPError, KeyError, ValueError):
                pass
        subprocess.run([*compose, "down", "-v", "--remove-orphans"], env=env, capture_output=True, timeout=300)
        client = docker.from_env()
        try:
            for container in client.containers.list(all=True, filters={"network": env["SANDBOXD_NETWORK"]}):
                container.remove(force=True)
            for network in client.networks.list(names=[env["SANDBOXD_NETWORK"]]):
                network.remove()
        finally:
            client.close()
        shutil.rmtree(env["SANDBOXD_SOCKET_DIR"], ignore_errors=True)
        # sandboxd leaves its firewall in place when it stops (sandboxes outlive it); the test may not.
        Firewall(FirewallPlan(env["SANDBOXD_BRIDGE"], "", 0)).remove()


def stack_gateway(url: str, key: str) -> str:
    """The sandbox bridge's gateway, from the proxy address sandboxd hands to sandboxes."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
        sid = api.post("/v1/sandboxes", json={}).json()["id"]
        try:
            proxy = api.post(f"/v1/sandboxes/{sid}/exec", json={"command": "printf %s $HTTP_PROXY"}).json()["stdout"]
        finally:
            api.delete(f"/v1/sandboxes/{sid}")
    return proxy.removeprefix("http://").rsplit(":", 1)[0]


def test_a_sandbox_through_the_stack_reaches_only_what_its_policy_allows(stack: tuple[str, str]) -> None:
    url, key = stack
    # On every interface, so that only the firewall keeps sandboxes from it on the gateway address.
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream_port = server.server_address[1]
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as api:
            health = api.get("/v1/health").json()
            assert health["ok"] is True
            rules = [{"action": "allow", "host": "127.0.0.1", "port": upstream_port}]
            created = api.post("/v1/sandboxes", json={"egress": {"rules": rules}})
            assert created.status_code == 201, created.text
            sid = created.json()["id"]

            def sh(command: str) -> dict:
                response = api.post(f"/v1/sandboxes/{sid}/exec", json={"command": command, "timeout_s": 30})
                assert response.status_code == 200, response.text
                return response.json()

            # 127.0.0.1 is in NO_PROXY; --noproxy '' sends it through the proxy, whose host it is.
            allowed = sh(f"curl -s --noproxy '' http://127.0.0.1:{upstream_port}/")
            assert allowed["stdout"] == "hello from upstream\n", allowed
            blocked = sh("curl -s --noproxy '' http://example.com/")
            assert "sandboxd egress: blocked" in blocked["stdout"] and "example.com" in blocked["stdout"]
            direct = sh("curl -s -m 3 --noproxy '*' http://1.1.1.1/ || echo unreachable")
            assert direct["stdout"].strip().endswith("unreachable"), direct
            # The host firewall: the proxy port on the gateway is the only host port a sandbox reaches.
            gateway = stack_gateway(url, key)
            exposed = sh(f"curl -s -m 3 --noproxy '*' http://{gateway}:{upstream_port}/ || echo unreachable")
            assert exposed["stdout"].strip().endswith("unreachable"), exposed
            assert not [w for w in health["warnings"] if "firewall" in w], health
            log = api.get(f"/v1/sandboxes/{sid}/egress/log").json()
            hosts = {(r["host"], r["blocked"]) for r in log["records"]}
            assert ("127.0.0.1", False) in hosts and ("example.com", True) in hosts
    finally:
        server.shutdown()
        server.server_close()
