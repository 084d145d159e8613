"""Request bodies built through the API's own models, so a bad argument fails here, clearly, before any I/O."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from sandboxd.errors import InvalidRequest
from sandboxd.models import CreateSandbox, ExecRequest, StartProcess

# Room for the daemon to answer after a command's own timeout has run out.
TIMEOUT_MARGIN_S = 30.0
# Transfers may pause while the sandbox side catches up; only a long silence means trouble.
TRANSFER_TIMEOUT = httpx.Timeout(300.0, connect=5.0)
DEFAULT_DIR = "/workspace"

Command = str | Sequence[str]


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        parts.append(f"{where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)


def build(model: type[BaseModel], **fields: Any) -> dict[str, Any]:
    """The JSON body for ``model`` from the arguments given (None means "not given").

    Raises:
        InvalidRequest: the arguments do not fit the model; the message names the field.
    """
    try:
        body = model(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from None
    return body.model_dump(mode="json", exclude_unset=True, exclude_none=True)


def command_fields(cmd: Command) -> dict[str, Any]:
    """A string runs through the shell (``bash -c``); a list is an argv run as is."""
    if isinstance(cmd, str):
        return {"command": cmd}
    if isinstance(cmd, bytes):
        raise InvalidRequest("a command is a str (shell) or a list of str (argv), not bytes")
    return {"argv": list(cmd)}


def create_body(**spec: Any) -> dict[str, Any]:
    return build(CreateSandbox, **spec)


def exec_body(
    cmd: Command,
    *,
    cwd: str | None,
    env: Mapping[str, str] | None,
    stdin: str | bytes | None,
    timeout: float | None,
    max_output_bytes: int | None,
    encoding: str | None = None,
) -> dict[str, Any]:
    stdin_fields: dict[str, Any] = {}
    if isinstance(stdin, bytes):
        stdin_fields["stdin_b64"] = base64.b64encode(stdin).decode()
    elif stdin is not None:
        stdin_fields["stdin"] = stdin
    return build(
        ExecRequest,
        **command_fields(cmd),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        timeout_s=timeout,
        max_output_bytes=max_output_bytes,
        encoding=encoding,
        **stdin_fields,
    )


def process_body(cmd: Command, *, cwd: str | None, env: Mapping[str, str] | None, name: str | None) -> dict[str, Any]:
    return build(StartProcess, **command_fields(cmd), cwd=cwd, env=dict(env) if env is not None else None, name=name)


def exec_timeout(timeout: float | None) -> httpx.Timeout:
    """How long to wait for a command's answer: its own timeout plus a margin, or as long as it takes."""
    read = None if timeout is None else timeout + TIMEOUT_MARGIN_S
    return httpx.Timeout(read, connect=5.0)


def list_params(state: str | None, labels: Mapping[str, str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if state is not None:
        params["state"] = state
    if labels:
        params["label"] = [f"{k}={v}" for k, v in labels.items()]
    return params


def segment(value: str) -> str:
    """An id as one path segment: a stray "/" or ".." cannot reach another endpoint."""
    if not value or value in (".", ".."):
        raise InvalidRequest(f"{value!r} is not a valid id")
    return quote(value, safe="")


def mode_param(mode: int | str | None) -> str | None:
    """Permission bits as the API spells them: 0o644 and "0644" both become "0644"."""
    return f"{mode:04o}" if isinstance(mode, int) else mode


def audit_params(**filters: Any) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if v is not None}
