"""The one exception hierarchy of sandboxd.

Every layer (runtime, supervisor client, service) raises these; the HTTP API maps
them to responses in exactly one place (``sandboxd.api.errors``), the MCP layer maps
them to tool errors, and the SDK raises the same classes from API answers. Each
class carries its HTTP status and a stable machine-readable ``code``.

    SandboxdError (500, internal)
     ├── InvalidRequest (422, invalid_request)     input that cannot be acted on
     │    └── PayloadTooLarge (413, payload_too_large)
     ├── Unauthenticated (401, unauthenticated)    no key, unknown key, revoked key
     ├── Forbidden (403, forbidden)                a valid key that may not do this
     ├── NotFound (404, not_found)                 missing, or another tenant's
     ├── Conflict (409, conflict)                  the target is in the wrong state
     │    ├── AlreadyExists (409, already_exists)
     │    ├── IsADirectory (409, is_a_directory)
     │    └── NotADirectory (409, not_a_directory)
     ├── PermissionDenied (403, permission_denied) the sandbox user may not touch a path
     ├── ImageNotFound (422, image_not_found)      create named an image that is not here
     ├── SandboxUnavailable (503, sandbox_unavailable)  the sandbox does not answer
     └── RuntimeFailure (502, runtime_failure)     the container engine failed

Messages are written for the person (or model) reading them: what is wrong and
what to do about it. They never carry stack traces, file contents or secrets.
"""

from __future__ import annotations

from typing import Any


class SandboxdError(Exception):
    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidRequest(SandboxdError):
    status = 422
    code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"


class Unauthenticated(SandboxdError):
    status = 401
    code = "unauthenticated"


class Forbidden(SandboxdError):
    status = 403
    code = "forbidden"


class NotFound(SandboxdError):
    status = 404
    code = "not_found"


class Conflict(SandboxdError):
    status = 409
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class IsADirectory(Conflict):
    code = "is_a_directory"


class NotADirectory(Conflict):
    code = "not_a_directory"


class PermissionDenied(SandboxdError):
    status = 403
    code = "permission_denied"


class ImageNotFound(SandboxdError):
    status = 422
    code = "image_not_found"


class SandboxUnavailable(SandboxdError):
    status = 503
    code = "sandbox_unavailable"


class RuntimeFailure(SandboxdError):
    status = 502
    code = "runtime_failure"


_BY_CODE: dict[str, type[SandboxdError]] = {
    cls.code: cls
    for cls in (
        SandboxdError,
        InvalidRequest,
        PayloadTooLarge,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        AlreadyExists,
        IsADirectory,
        NotADirectory,
        PermissionDenied,
        ImageNotFound,
        SandboxUnavailable,
        RuntimeFailure,
    )
}


def error_from_code(code: str, message: str, **details: Any) -> SandboxdError:
    """Rebuild an error from its wire form (the SDK and the supervisor client use this)."""
    return _BY_CODE.get(code, SandboxdError)(message, **details)
