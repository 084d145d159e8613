"""What the addons learn about one request, kept on the flow for the addons after them.

Identify creates the record, Policy fills in the destination, Secrets the
names it injected, Scrub the byte count, and EgressAudit writes it out. It
lives in ``flow.metadata`` (the place mitmproxy keeps per-flow addon data);
these flows are never saved to disk, which matters because the record holds
the sandbox entry and so, indirectly, secret values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mitmproxy import http

if TYPE_CHECKING:
    from egress_proxy.scrubbing import ByteCounter, StreamScrubber
    from egress_proxy.state import SandboxEntry

METADATA_KEY = "sandboxd.egress"
ASK_OWNER = "Ask the sandbox owner to allow it."


@dataclass(slots=True, repr=False)
class EgressRecord:
    client_ip: str
    sandbox: SandboxEntry | None
    started: float = field(default_factory=time.time)
    scheme: str = ""
    host: str = ""
    """The destination as the sandbox named it (CONNECT target or URL host), never the pinned IP."""
    port: int = 0
    injected: list[str] = field(default_factory=list)
    blocked: str | None = None
    """Why the proxy refused the request (the 403 body says the same)."""
    failure: str | None = None
    """Why the request failed without being refused: DNS, upstream errors."""
    note: str | None = None
    """Something the audit should say about an allowed request."""
    request_stream: StreamScrubber | ByteCounter | None = None
    response_stream: StreamScrubber | ByteCounter | None = None
    audited: bool = False

    def __repr__(self) -> str:
        return f"EgressRecord(client_ip={self.client_ip!r}, host={self.host!r}, blocked={self.blocked!r})"


def record_of(flow: http.HTTPFlow) -> EgressRecord | None:
    return flow.metadata.get(METADATA_KEY)


def refuse(
    flow: http.HTTPFlow, reason: str, *, status: int = 403, detail: str = "", advice: str | None = None
) -> None:
    """Answer the sandbox ourselves with a short text saying why, and remember the reason.

    A 403 is a policy decision (``blocked`` in the audit); any other status is a
    failure the sandbox cannot fix by asking for a rule. ``detail`` goes into the
    body only, for facts the audit record already holds in other fields;
    ``advice`` replaces the default next step ("ask the owner to allow it").
    """
    record = record_of(flow)
    if record is not None:
        if status == 403:
            record.blocked = reason
        else:
            record.failure = reason
    verdict = "blocked" if status == 403 else "failed"
    if advice is None:
        advice = ASK_OWNER if status == 403 else ""
    target = describe_target(flow, record)
    flow.response = http.Response.make(
        status,
        f"sandboxd egress: {verdict} {target}: {reason}{detail}.{' ' + advice if advice else ''}\n",
        {"content-type": "text/plain; charset=utf-8", "x-sandboxd-egress": verdict},
    )
    # Most clients never show the body of a refused CONNECT, but they do print the
    # status line ("Tunnel connection failed: 403 ..."), so the reason goes there too.
    flow.response.reason = _status_phrase(f"{verdict} by sandboxd egress: {reason}")


def _status_phrase(text: str, limit: int = 300) -> str:
    printable = "".join(c if " " <= c <= "~" else "?" for c in text)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."


def describe_target(flow: http.HTTPFlow, record: EgressRecord | None) -> str:
    request = flow.request
    host = record.host if record is not None and record.host else request.pretty_host
    port = record.port if record is not None and record.port else request.port
    if request.method == "CONNECT":
        return f"CONNECT {host}:{port}"
    scheme = record.scheme if record is not None and record.scheme else request.scheme
    default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    authority = host if default else f"{host}:{port}"
    path = request.path.split("?", 1)[0]
    if record is not None and record.sandbox is not None:
        path = record.sandbox.secrets.name_placeholders(path)
    return f"{request.method} {scheme}://{authority}{path}"
