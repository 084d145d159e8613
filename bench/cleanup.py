"""Remove everything a benchmark's own sandboxd left on the engine and the host.

A daemon leaves its sandboxes, network and firewall rules in place when it stops
(sandboxes outlive it by design); a benchmark's throwaway daemon must not.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import docker
import docker.errors

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
