"""Identify: which sandbox sent this request, by its source address on the sandbox network.

The sandbox network gives each container its own address and no way to spoof
another's, so the source address is the identity; sandboxes hold no proxy
credential that could leak. Unknown addresses are refused before any other
addon looks at the request.
"""

from __future__ import annotations

from mitmproxy import http

from egress_proxy.record import METADATA_KEY, EgressRecord, refuse
from egress_proxy.state import StateHolder, normalize_client_ip


class Identify:
    def __init__(self, holder: StateHolder) -> None:
        self._holder = holder

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._identify(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._identify(flow)

    def _identify(self, flow: http.HTTPFlow) -> None:
        client_ip = normalize_client_ip(flow.client_conn.peername[0]) if flow.client_conn.peername else ""
        state = self._holder.current
        entry = state.sandboxes.get(client_ip)
        flow.metadata[METADATA_KEY] = EgressRecord(client_ip, entry, started=flow.request.timestamp_start)
        if entry is not None:
            return
        invalid = state.invalid.get(client_ip)
        if invalid is not None:
            refuse(
                flow,
                f"the egress configuration of this sandbox is invalid: {invalid}",
                advice="Ask the sandbox owner to fix its policy or secrets.",
            )
        else:
            refuse(
                flow,
                "unknown client",
                detail=f" (no sandbox has the source address {client_ip})",
                advice="Only sandboxes managed by sandboxd may use this proxy.",
            )
