"""EgressAudit: one JSON line per request, allowed or refused, appended to the file sandboxd ingests.

Line format (option ``egress_audit`` names the file)::

    {"ts": "2025-01-01T12:00:00.000Z",    request start, UTC
     "sandbox_id": "sbx_..." | null, "tenant_id": "tnt_..." | null, "client_ip": "10.0.0.2",
     "method": "GET", "scheme": "https" | "http" | null (CONNECT),
     "host": "api.example.com", "port": 443,
     "path": "/v1/x?key=REDACTED" | null (CONNECT),
     "status": 200 | null, "bytes_out": 0, "bytes_in": 1234, "duration_ms": 12.3,
     "secrets": ["GITHUB_TOKEN"], "blocked": false, "reason": null | "why"}

``host`` is the name the sandbox asked for, not the address connected to.
``bytes_out`` counts request body bytes sent upstream, ``bytes_in`` response
body bytes delivered to the sandbox. Allowed CONNECTs are not recorded (each
request inside the tunnel is); refused and failed ones are. No line holds a
secret value or a placeholder: query values are redacted, placeholders in the
path become ``{NAME}``, reasons name secrets only.

Each line is written with one ``write()`` to an ``O_APPEND`` descriptor, so it
is in the file when the request completes and lines never interleave.

Rotation: sandboxd may rename the file away. The proxy notices on a write at
most a second later and creates a new file at the path; every line written
before that is in the renamed file. So a reader finishes the renamed file
only after the path exists again.
"""

from __future__ import annotations

import json
import logging
import os
import time

from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader

from egress_proxy.record import record_of
from egress_proxy.redaction import redact_query
from egress_proxy.rules import normalize_host

logger = logging.getLogger(__name__)

_REOPEN_CHECK_SECONDS = 1.0


class EgressAudit:
    def __init__(self) -> None:
        self._path = ""
        self._fd: int | None = None
        self._checked_at = 0.0

    def load(self, loader: Loader) -> None:
        loader.add_option("egress_audit", str, "", "File to append egress audit records to, one JSON line each.")

    def configure(self, updated: set[str]) -> None:
        if "egress_audit" in updated:
            self._close()
            self._path = ctx.options.egress_audit
            if self._path:
                self._open()

    def done(self) -> None:
        self._close()

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        self._record(flow)

    def _record(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if record is None or record.audited:
            return
        record.audited = True
        if self._fd is None:
            return
        data = (_ENCODER.encode(audit_line(flow)) + "\n").encode()
        self._reopen_if_rotated()
        try:
            # One write() on an O_APPEND descriptor: the line lands whole, and is in
            # the file (not in a user-space buffer) when the call returns.
            os.write(self._fd, data)
        except OSError as exc:
            logger.error("cannot write the egress audit to %s: %s", self._path, exc)

    def _open(self) -> None:
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._checked_at = time.monotonic()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _reopen_if_rotated(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < _REOPEN_CHECK_SECONDS or self._fd is None:
            return
        self._checked_at = now
        try:
            current = os.stat(self._path)
        except FileNotFoundError:
            current = None
        if current is None or current.st_ino != os.fstat(self._fd).st_ino:
            self._close()
            self._open()


_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _iso_utc(timestamp: float) -> str:
    whole = int(timestamp)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((timestamp - whole) * 1000):03d}Z"


def audit_line(flow: http.HTTPFlow) -> dict[str, object]:
    """The audit record of a finished (or refused, or failed) flow."""
    record = record_of(flow)
    assert record is not None
    request, response = flow.request, flow.response
    is_connect = request.method == "CONNECT"
    sandbox = record.sandbox
    if is_connect:
        path = None
    else:
        path = redact_query(request.path)
        if sandbox is not None:
            path = sandbox.secrets.name_placeholders(path)
    refused = record.blocked is not None
    if record.response_stream is not None:
        bytes_in = record.response_stream.bytes_out
    else:
        bytes_in = len(response.raw_content or b"") if response is not None else 0
    reason = record.blocked or record.failure or (flow.error.msg if flow.error else None) or record.note
    if refused or is_connect:
        bytes_out = 0
    elif record.request_stream is not None:
        bytes_out = record.request_stream.bytes_out
    else:
        bytes_out = len(request.raw_content or b"")
    return {
        "ts": _iso_utc(record.started),
        "sandbox_id": sandbox.sandbox_id if sandbox else None,
        "tenant_id": sandbox.tenant_id if sandbox else None,
        "client_ip": record.client_ip,
        "method": request.method,
        "scheme": None if is_connect else (record.scheme or request.scheme),
        "host": record.host or normalize_host(request.host),
        "port": record.port or request.port,
        "path": path,
        "status": response.status_code if response is not None else None,
        "bytes_out": bytes_out,
        "bytes_in": bytes_in,
        "duration_ms": round((time.time() - record.started) * 1000, 1),
        "secrets": list(record.injected),
        "blocked": refused,
        "reason": reason,
    }
