"""A benchmark's own sandboxd: started on a temporary data directory, and removed without a trace.

A daemon leaves its sandboxes, network and firewall rules in place when it stops
(sandboxes outlive it by design); a benchmark's throwaway daemon must not.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import httpx

from sandboxd.egress.firewall import Firewall, FirewallPlan
from sandboxd.egress.network import bridge_name, network_name


def instance_of(data_dir: Path) -> str | None:
    db = data_dir / "sandboxd.db"
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()
    return row[0] if row else None


def remove_instance(instance: str | None) -> None:
    if not instance:
        return
    client = docker.from_env()
    try:
        for container in client.containers.list(all=True, filters={"label": f"org.sandboxd.instance={instance}"}):
            container.remove(force=True)
        for image in client.images.list(filters={"label": f"org.sandboxd.image-owner={instance}"}):
            for tag in image.tags or [image.id]:
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(tag, force=True)
        for network in client.networks.list(names=[network_name(instance)]):
            with contextlib.suppress(docker.errors.APIError):
                network.remove()
    finally:
        client.close()
    Firewall(FirewallPlan(bridge_name(instance), "", 0)).remove()


@dataclass(frozen=True)
class Throwaway:
    url: str
    key: str
    data_dir: Path


@contextlib.contextmanager
def throwaway_sandboxd(prefix: str = "sbxb") -> Iterator[Throwaway]:
    """``sandboxd serve`` on a free port; on leaving, it is stopped and everything it made is removed."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        key = "sbd-bench-" + secrets.token_urlsafe(32)
        data_dir = Path(tmp) / "data"
        env = {**os.environ, "SANDBOXD_DATA_DIR": str(data_dir), "SANDBOXD_PORT": str(port), "SANDBOXD_API_KEY": key}
        with open(Path(tmp) / "daemon.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "sandboxd", "serve"], env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/v1/health").status_code == 200:
                        break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"sandboxd did not start; see {tmp}/daemon.log")
                time.sleep(0.05)
            yield Throwaway(url, key, data_dir)
        finally:
            instance = instance_of(data_dir)
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            remove_instance(instance)
