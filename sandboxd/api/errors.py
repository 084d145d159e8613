"""Domain errors to HTTP answers, in this one place.

Every error body has the same shape: ``{"error": code, "message": text}``, plus
``details`` where they help. Validation failures say which field is wrong and
why; anything unexpected is logged with a request id and answered as a bare 500
that carries no internals.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandboxd.errors import SandboxdError

log = logging.getLogger("sandboxd.api")


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def describe_validation(errors: list[dict]) -> str:
    messages = []
    for err in errors[:5]:
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            msg = "unknown field (check the spelling; see /docs)"
        elif err.get("type") == "json_invalid":
            msg = "the body is not valid JSON"
        messages.append(f"{_field(tuple(err.get('loc', ())))}: {msg.removeprefix('Value error, ')}")
    if len(errors) > 5:
        messages.append(f"and {len(errors) - 5} more")
    return "; ".join(messages)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SandboxdError)
    async def domain_error(request: Request, exc: SandboxdError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.url.path, exc.status, exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")} for e in exc.errors()
        ]
        body = {"error": "invalid_request", "message": describe_validation(errors), "details": {"errors": errors}}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return JSONResponse({"error": codes.get(exc.status_code, "error"), "message": message}, exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = secrets.token_hex(6)
        log.exception("request %s: %s %s failed", request_id, request.method, request.url.path)
        body = {"error": "internal", "message": f"internal error (request id {request_id}); the daemon log has details"}
        return JSONResponse(body, status_code=500)
