"""Sandbox addresses, chosen by sandboxd round the subnet instead of by the engine.

The engine gives each new container the lowest free address, so an address
freed by one sandbox goes straight to the next, and the proxy, which knows
sandboxes by address, could take one for the other until its state catches up.
Choosing the next address after the last one handed out means an address comes
back only after the whole subnet has gone round (65 533 sandboxes on a /16),
and the choice is known, and published to the proxy, before the container exists.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from sandboxd.errors import RuntimeFailure


def next_address(subnet: str, gateway: str | None, after: str | None, taken: Collection[str]) -> str:
    """The first usable address after ``after`` (wrapping round), skipping the gateway and ``taken``.

    Raises:
        RuntimeFailure: every address of the subnet is in use.
    """
    network = ipaddress.ip_network(subnet, strict=False)
    first, last = int(network.network_address) + 1, int(network.broadcast_address) - 1
    size = last - first + 1
    if size <= 0:
        raise RuntimeFailure(f"the sandbox subnet {subnet} has no room for sandboxes")
    skip = set(taken) | ({gateway} if gateway else set())
    start = first
    if after is not None:
        previous = int(ipaddress.ip_address(after))
        if first <= previous <= last:
            start = previous + 1
    for step in range(size):
        candidate = str(ipaddress.ip_address(first + (start - first + step) % size))
        if candidate not in skip:
            return candidate
    raise RuntimeFailure(f"every address of the sandbox subnet {subnet} is in use")
