"""Which upstream addresses a sandbox may reach without a rule naming the host.

The sandbox network has no route out, but the proxy does: without this guard a
sandbox could ask the proxy for ``http://169.254.169.254/`` (cloud metadata),
the host's own services, or anything else on the proxy's networks. Every
address a host name resolves to is checked (a name with one public and one
private address is refused), and the proxy then connects to the address it
checked, so a second DNS answer (rebinding) cannot swap in another one.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Named ranges first so the refusal says what the address is; anything else that
# is not globally routable is refused as "reserved".
_REFUSED_RANGES: tuple[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network], ...] = tuple(
    (label, ipaddress.ip_network(net))
    for label, net in (
        ("cloud metadata", "169.254.169.254/32"),
        ("cloud metadata", "fd00:ec2::254/128"),
        ("unspecified", "0.0.0.0/8"),
        ("loopback", "127.0.0.0/8"),
        ("private", "10.0.0.0/8"),
        ("private", "172.16.0.0/12"),
        ("private", "192.168.0.0/16"),
        ("carrier-grade NAT", "100.64.0.0/10"),
        ("link-local", "169.254.0.0/16"),
        ("multicast", "224.0.0.0/4"),
        ("reserved", "240.0.0.0/4"),
        ("unspecified", "::/128"),
        ("loopback", "::1/128"),
        ("private", "fc00::/7"),
        ("link-local", "fe80::/10"),
        ("multicast", "ff00::/8"),
    )
)


@functools.lru_cache(maxsize=4096)
def refused_range(address: str) -> str | None:
    """The name of the range that makes ``address`` off limits, or None if it is public.

    IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4) are judged by
    the IPv4 address inside, since that is where the packets end up.
    """
    ip: IPAddress = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return refused_range(str(embedded))
    for label, network in _REFUSED_RANGES:
        if ip.version == network.version and ip in network:
            return label
    if not ip.is_global:
        return "reserved"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Destination:
    """The outcome of checking where a host name leads."""

    address: str | None
    """The address to connect to (pinned); None when refused."""
    refusal: str | None = None
    """Why the destination is refused, for the 403 body and the audit record."""
    status: int = 403


def choose_destination(host: str, addresses: Sequence[str], named_explicitly: bool) -> Destination:
    """Check every resolved address and pick the one to connect to.

    IPv4 is preferred when both families are present: sandbox networks and most
    hosts here are IPv4 only, and with a single pinned address there is no
    fallback between families.
    """
    if not addresses:
        return Destination(None, f"{host} did not resolve to any address", status=502)
    if not named_explicitly:
        for address in addresses:
            label = refused_range(address)
            if label is not None:
                via = "" if address == host else f"{host} resolves to "
                return Destination(
                    None,
                    f"{via}{address}, a {label} address; only an allow rule naming {host} "
                    "exactly may reach it",
                )
    ipv4 = [a for a in addresses if ":" not in a]
    return Destination((ipv4 or list(addresses))[0])


async def resolve(host: str, port: int) -> list[str]:
    """All addresses of ``host`` (an IP literal resolves to itself), in resolver order.

    Raises OSError when the name does not resolve.
    """
    if is_ip_literal(host):
        return [str(ipaddress.ip_address(host))]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            # Drop an IPv6 zone ("%eth0"); the range check is about the address.
            seen[str(ipaddress.ip_address(sockaddr[0].split("%")[0]))] = None
    return list(seen)
