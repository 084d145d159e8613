"""Secrets: put real credentials into requests for the hosts they belong to, and nowhere else.

The sandbox sends placeholders. For a secret's own hosts the placeholder is
replaced by the value in headers (always), and in the query string or body
when the secret allows it; the secret's injection (a header, basic auth or a
query parameter) is added even if the sandbox sent nothing, replacing what it
sent. A placeholder bound for any other host, or in a place the secret does
not allow, stops the request with a 403 naming the secret, so the agent learns
what went wrong and the value never leaves for the wrong place.

Headers and the query are handled in ``requestheaders``; the body in
``request``, once mitmproxy has read it whole. Bodies larger than
REQUEST_BUFFER_LIMIT (or of unknown length) are streamed instead, unchanged
(see ``_stream_body``).
"""

from __future__ import annotations

from urllib.parse import quote

from mitmproxy import http

from egress_proxy.credentials import Secret
from egress_proxy.record import EgressRecord, record_of, refuse
from egress_proxy.scrubbing import ByteCounter, Scrubber, StreamScrubber

REQUEST_BUFFER_LIMIT = 1024 * 1024
"""Request bodies up to this declared length are read whole and checked before anything goes out."""
_ADVICE = "Secrets are only sent where the sandbox owner configured them to go."


class Secrets:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if flow.response or record is None or record.sandbox is None:
            return
        if record.sandbox.secrets and not _place_in_headers_and_query(flow, record):
            return
        if _is_large(flow.request):
            _stream_body(flow, record)

    def request(self, flow: http.HTTPFlow) -> None:
        streamed = record_of(flow)
        if streamed is not None and isinstance(streamed.request_stream, StreamScrubber):
            _streamed_outcome(streamed, streamed.request_stream)
            return
        record = _record_with_secrets(flow)
        if record is None or not flow.request.raw_content:
            return
        body = flow.request.get_content(strict=False) or b""
        found = record.sandbox.secrets.find_placeholders(body)  # type: ignore[union-attr]
        if not found:
            return
        problem = _wrong_host(found, record.host) or _not_allowed(
            [s for s in found if not s.allow_in_body], "the request body, which this secret does not allow"
        )
        if problem:
            refuse(flow, problem, advice=_ADVICE)
            return
        flow.request.content = _substitute(body, found, encode=False)
        for secret in found:
            _note(record, secret)


def _place_in_headers_and_query(flow: http.HTTPFlow, record: EgressRecord) -> bool:
    """Place secrets in headers and query; False when the request was refused."""
    secrets = record.sandbox.secrets  # type: ignore[union-attr]
    request = flow.request
    host = record.host
    fields = request.headers.fields
    in_headers = secrets.find_placeholders(b"\n".join(name + b":" + value for name, value in fields))
    path, sep, query = request.path.partition("?")
    in_path = secrets.find_placeholders(path.encode("utf-8", "surrogateescape"))
    in_query = secrets.find_placeholders(query.encode("utf-8", "surrogateescape")) if sep else []
    problem = (
        _wrong_host(in_headers + in_path + in_query, host)
        or _not_allowed(in_path, "the URL path, where placeholders are never replaced")
        or _not_allowed([s for s in in_query if not s.allow_in_query], "the query string, which this secret does not allow")
    )
    if problem:
        refuse(flow, problem, advice=_ADVICE)
        return False

    if in_headers:
        request.headers.fields = tuple(
            (name, _substitute(value, in_headers, encode=False)) for name, value in fields
        )
    if in_query:
        request.path = f"{path}?{_substitute(query.encode(), in_query, encode=True).decode()}"
    for secret in in_headers + in_query:
        _note(record, secret)
    for secret in secrets.secrets:
        if secret.inject is not None and secret.allowed_for(host):
            _inject(request, secret)
            _note(record, secret)
    if "accept-encoding" in request.headers:
        # Compressed responses cannot be scrubbed byte by byte; ask for plain ones.
        request.headers["accept-encoding"] = "identity"
    return True


def _record_with_secrets(flow: http.HTTPFlow) -> EgressRecord | None:
    record = record_of(flow)
    if flow.response or record is None or record.sandbox is None or not record.sandbox.secrets:
        return None
    if record.request_stream is not None:
        return None  # the body went out as a stream, placed by _stream_body
    return record


def _is_large(request: http.Request) -> bool:
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        return True
    length = request.headers.get("content-length", "")
    return length.isdigit() and int(length) > REQUEST_BUFFER_LIMIT


def _stream_body(flow: http.HTTPFlow, record: EgressRecord) -> None:
    """Send a large body on as it arrives, byte for byte, watching for placeholders.

    Placing a value would change the body's length, and turning a declared
    length into a chunked upload breaks servers that need the length (object
    stores, many API gateways). A stream cannot be refused once its headers are
    gone either. So placeholders in streamed bodies pass through unreplaced
    (each is only a random token) and the audit record says so.
    """
    secrets = record.sandbox.secrets  # type: ignore[union-attr]
    if secrets:
        stream: StreamScrubber | ByteCounter = Scrubber({p: p for p in secrets.by_placeholder}).stream()
    else:
        stream = ByteCounter()
    record.request_stream = flow.request.stream = stream


def _streamed_outcome(record: EgressRecord, stream: StreamScrubber) -> None:
    """After a streamed body (``request`` runs at its end): say which placeholders it carried."""
    secrets = record.sandbox.secrets  # type: ignore[union-attr]
    names = sorted(secrets.by_placeholder[p].name for p in stream.found)
    if names:
        record.note = (
            f"the request body (streamed, over {REQUEST_BUFFER_LIMIT // 1024} KiB) carried the placeholder of "
            f"{', '.join(names)}, passed on unreplaced: secrets are placed only in bodies read whole"
        )


def _wrong_host(found: list[Secret], host: str) -> str | None:
    for secret in found:
        if not secret.allowed_for(host):
            return (
                f"the request carries the placeholder of secret {secret.name}, which may only be sent "
                f"to {secret.hosts_text()}, not {host}"
            )
    return None


def _not_allowed(found: list[Secret], where: str) -> str | None:
    if found:
        return f"the placeholder of secret {found[0].name} is in {where}"
    return None


def _substitute(data: bytes, secrets: list[Secret], *, encode: bool) -> bytes:
    for secret in secrets:
        value = quote(secret.value, safe="") if encode else secret.value
        data = data.replace(secret.placeholder.encode(), value.encode())
    return data


def _inject(request: http.Request, secret: Secret) -> None:
    header = secret.injected_header()
    if header is not None:
        request.headers[header[0]] = header[1]
    elif secret.inject is not None and secret.inject.kind == "query":
        request.query[secret.inject.param] = secret.value


def _note(record: EgressRecord, secret: Secret) -> None:
    if secret.name not in record.injected:
        record.injected.append(secret.name)
