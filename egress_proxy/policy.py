"""Policy: may this sandbox reach this destination, and where exactly do we connect?

Decided twice: on CONNECT (host and port, before any byte reaches the
upstream) and on every request inside the tunnel (method and path too, with
the policy current at that moment, so a change applies to the next request on
a kept-alive connection). A request must name the host its tunnel was opened
to, in the Host header (or :authority) and in the TLS SNI: otherwise a sandbox
could open a tunnel to an allowed CDN name and ask it for another site.

The destination's addresses are checked here (see ``egress_proxy.addresses``)
and the checked address replaces the host name as the connection's address,
so mitmproxy never resolves the name again. ``server_connect`` refuses any
address this addon did not check: a last wall if a code path slips past the
request hooks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mitmproxy import connection, http, tcp
from mitmproxy.net.http import url
from mitmproxy.proxy import server_hooks

from egress_proxy.addresses import Destination, choose_destination, refused_range, resolve
from egress_proxy.record import record_of, refuse
from egress_proxy.rules import Policy as RulePolicy
from egress_proxy.rules import normalize_host

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tunnel:
    host: str
    port: int
    address: str


Resolver = Callable[[str, int], Awaitable[list[str]]]


class Policy:
    def __init__(self, resolver: Resolver = resolve) -> None:
        self._resolve = resolver
        self._tunnels: dict[str, Tunnel] = {}
        self._checked: dict[str, set[str]] = {}

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if flow.response or record is None or record.sandbox is None:
            return
        host, port = normalize_host(flow.request.host), flow.request.port
        record.host, record.port = host, port
        policy = record.sandbox.policy
        decision = policy.decide_connect(host, port)
        if not decision.allowed:
            refuse(flow, decision.reason)
            return
        destination = await self._destination(policy, host, port)
        if destination.address is None:
            refuse(flow, destination.refusal or "refused", status=destination.status)
            return
        self._tunnels[flow.client_conn.id] = Tunnel(host, port, destination.address)
        self._remember(flow.client_conn, destination.address)
        # The tunnel's server connection goes to the checked address; the name stays
        # as SNI so the upstream certificate is verified against it, whatever SNI the
        # sandbox sends later.
        flow.request.data.host = destination.address
        flow.server_conn.sni = host

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if flow.response or record is None or record.sandbox is None:
            return
        request = flow.request
        tunnel = self._tunnels.get(flow.client_conn.id)
        if tunnel is not None:
            host, port = tunnel.host, tunnel.port
        else:
            host, port = normalize_host(request.host), request.port
        record.host, record.port, record.scheme = host, port, request.scheme
        fronting = _fronting(request.host_header, flow.client_conn.sni, host, port, tunnel is not None)
        if fronting:
            refuse(flow, fronting, advice="Send each request to the host its connection was opened for.")
            return
        policy = record.sandbox.policy
        decision = policy.decide_request(host, port, request.method, request.path.split("?", 1)[0])
        if not decision.allowed:
            refuse(flow, decision.reason)
            return
        if tunnel is not None:
            # The tunnel was checked on CONNECT; the rule that let a private address
            # through may have been removed since.
            label = refused_range(tunnel.address)
            if label is not None and not policy.names_explicitly(host):
                refuse(flow, f"{host} is at {tunnel.address}, a {label} address; only an allow rule "
                       f"naming {host} exactly may reach it")
            return
        destination = await self._destination(policy, host, port)
        if destination.address is None:
            refuse(flow, destination.refusal or "refused", status=destination.status)
            return
        self._remember(flow.client_conn, destination.address)
        # Connect to the checked address; the Host header still carries the name.
        request.data.host = destination.address

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        address = data.server.address
        if address is None or address[0] not in self._checked.get(data.client.id, ()):
            data.server.error = "sandboxd egress: refusing a connection to an address the policy did not check"
            logger.warning("refused unchecked upstream connection to %s", address)

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        # SafeDefaults turns raw TCP off; should a configuration turn it back on,
        # nothing is relayed: raw bytes would skip every rule, secret check and scrub.
        flow.messages[-1].content = b""
        if flow.killable:
            logger.warning("dropping raw TCP data in a tunnel from %s", flow.client_conn.peername)
            flow.kill()

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.pop(client.id, None)
        self._checked.pop(client.id, None)

    def _remember(self, client: connection.Client, address: str) -> None:
        self._checked.setdefault(client.id, set()).add(address)

    async def _destination(self, policy: RulePolicy, host: str, port: int) -> Destination:
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            return Destination(None, f"cannot resolve {host}: {exc.strerror or exc}", status=502)
        return choose_destination(host, addresses, policy.names_explicitly(host))


def _fronting(authority: str | None, sni: str | None, host: str, port: int, in_tunnel: bool) -> str | None:
    """Why the names in the request disagree with its destination, or None if they agree."""
    if authority and authority != host and authority != f"{host}:{port}":
        named, named_port = url.parse_authority(authority, check=False)
        named = normalize_host(named)
        if named != host or (named_port is not None and named_port != port):
            where = "tunnel was opened to" if in_tunnel else "request URL names"
            return (f"the Host header names {authority} but the {where} {host}:{port} "
                    "(domain fronting is refused)")
    if in_tunnel and sni and normalize_host(sni) != host:
        return f"the TLS SNI {sni} does not match the tunnel's host {host} (domain fronting is refused)"
    return None
