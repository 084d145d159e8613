"""The sandbox network: one internal Docker bridge per daemon instance.

``internal`` gives it no route out and no DNS beyond its own names;
``enable_icc=false`` stops traffic between sandboxes on it; masquerading is off
since nothing should leave. Its bridge gets a fixed, short name derived from the
instance id, so the firewall can name the interface before any sandbox exists.
The host side of the bridge (the gateway address) is where a local egress proxy
listens: the one address a sandbox can reach.
"""

from __future__ import annotations

import hashlib

from sandboxd.errors import RuntimeFailure
from sandboxd.runtime.base import LABEL_INSTANCE, LABEL_MANAGED, NetworkInfo

ICC_OPTION = "com.docker.network.bridge.enable_icc"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
MASQUERADE_OPTION = "com.docker.network.bridge.enable_ip_masquerade"
_IFNAMSIZ = 15  # Linux interface names are at most 15 characters


def network_name(instance_id: str) -> str:
    return f"sandboxd-egress-{instance_id}"


def bridge_name(instance_id: str) -> str:
    """``sbxd`` + a digest of the instance id: short enough for Linux, distinct per daemon."""
    digest = hashlib.sha256(instance_id.encode()).hexdigest()
    return ("sbxd" + digest)[:_IFNAMSIZ]


def network_options(instance_id: str) -> dict[str, str]:
    return {ICC_OPTION: "false", BRIDGE_NAME_OPTION: bridge_name(instance_id), MASQUERADE_OPTION: "false"}


def network_labels(instance_id: str) -> dict[str, str]:
    return {LABEL_MANAGED: "true", LABEL_INSTANCE: instance_id}


def check_isolated(info: NetworkInfo, *, icc_allowed: bool = False) -> list[str]:
    """Refuse a network that would let sandboxes out; returns warnings for weaker isolation.

    ``icc_allowed`` is for an external proxy that is itself a container on the
    network (docker compose): sandboxes must reach it, so inter-container traffic
    cannot be off there, and that is reported rather than refused.

    Raises:
        RuntimeFailure: the network is not internal, has no gateway, or (unless
            allowed) lets sandboxes reach each other.
    """
    if not info.internal:
        raise RuntimeFailure(
            f"the sandbox network {info.name} is not internal: sandboxes on it would have a route out. "
            "Remove it (docker network rm) or recreate it with internal: true"
        )
    if not info.gateway:
        raise RuntimeFailure(f"the sandbox network {info.name} has no IPv4 gateway address")
    if info.options.get(ICC_OPTION, "true").lower() in ("false", "0"):
        return []
    message = (
        f"the sandbox network {info.name} lets sandboxes reach each other "
        f"(driver option {ICC_OPTION} is not false)"
    )
    if not icc_allowed:
        raise RuntimeFailure(message + "; remove the network so sandboxd can recreate it")
    return [message]
