"""Request bodies built through the API's own models, so a bad argument fails here, clearly, before any I/O."""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from sandboxd.errors import InvalidRequest
from sandboxd.models import (
    CreateSandbox,
    CreateSnapshot,
    EgressPolicyIn,
    EgressRule,
    ExecRequest,
    ForkRequest,
    LifecycleDefaultsIn,
    LifecycleUpdate,
    PutSecret,
    StartProcess,
)

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


def create_body(*, egress: Sequence[Rule] | None = None, **spec: Any) -> dict[str, Any]:
    """``egress`` None follows the tenant's default policy; a list (even empty) gives the sandbox rules of its own."""
    if egress is not None:
        spec["egress"] = policy_body(egress)
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


# --- snapshots and lifecycle -------------------------------------------------------------------

# A snapshot commits the whole filesystem and a fork starts containers: give them room.
SNAPSHOT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)


class Keep(enum.Enum):
    """An argument left out of a partial update: the value stays as it is (None would clear it)."""

    KEEP = "keep"


KEEP = Keep.KEEP


def snapshot_body(name: str | None, labels: Mapping[str, str] | None) -> dict[str, Any]:
    return build(CreateSnapshot, name=name, labels=dict(labels) if labels is not None else None)


def fork_body(count: int, labels: Mapping[str, str] | None, env: Mapping[str, str] | None) -> dict[str, Any]:
    return build(
        ForkRequest,
        count=count,
        labels=dict(labels) if labels is not None else None,
        env=dict(env) if env is not None else None,
    )


def snapshot_list_params(sandbox_id: str | None, labels: Mapping[str, str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if sandbox_id is not None:
        params["sandbox_id"] = sandbox_id
    if labels:
        params["label"] = [f"{k}={v}" for k, v in labels.items()]
    return params


def lifecycle_body(**fields: Any) -> dict[str, Any]:
    """A PATCH body: fields given as ``KEEP`` are left out, None is sent as null (clear it)."""
    chosen = {k: v for k, v in fields.items() if v is not KEEP}
    try:
        update = LifecycleUpdate(**chosen)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from None
    return update.model_dump(mode="json", exclude_unset=True)


def lifecycle_defaults_body(**fields: Any) -> dict[str, Any]:
    return build(LifecycleDefaultsIn, **fields)


def changes_params(path: str, diff: bool, **extra: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    params["path"] = path
    params["diff"] = "true" if diff else "false"
    return params


# --- egress and secrets ------------------------------------------------------------------------

# A full rule, or a str "HOST[:PORT]" that allows that host (on that port).
Rule = str | EgressRule | Mapping[str, Any]


def host_port(spec: str) -> tuple[str, int | None]:
    """"api.example.com", "api.example.com:443", "[2001:db8::1]:443" or "2001:db8::1" as (host, port).

    Raises:
        InvalidRequest: the port is not a number from 1 to 65535.
    """
    spec = spec.strip()
    if spec.startswith("["):
        host, sep, rest = spec[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidRequest(f"{spec!r}: write an IPv6 address with a port as [ADDRESS]:PORT")
        port_text = rest[1:] or None
    elif spec.count(":") == 1:
        host, _, port_text = spec.partition(":")
    else:
        host, port_text = spec, None
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidRequest(f"{spec!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def _rule(rule: Rule) -> dict[str, Any]:
    if isinstance(rule, str):
        host, port = host_port(rule)
        return {"action": "allow", "host": host, **({"port": port} if port is not None else {})}
    if isinstance(rule, EgressRule):
        return rule.model_dump(exclude_none=True)
    return dict(rule)


def policy_body(
    rules: Sequence[Rule] | None, allow: Sequence[str] | None = None, deny: Sequence[str] | None = None
) -> dict[str, Any]:
    """Rules as given (a str is an allow rule for "HOST[:PORT]"), then ``deny`` and ``allow`` hosts as rules.

    Raises:
        InvalidRequest: a rule the API's model refuses (the message names it).
    """
    if isinstance(rules, str):
        raise InvalidRequest("rules is a list (of host names or rules), not one string")
    every = [_rule(r) for r in rules or ()]
    every += [{**_rule(spec), "action": "deny"} for spec in deny or ()]
    every += [_rule(spec) for spec in allow or ()]
    try:
        policy = EgressPolicyIn(rules=every)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from None
    return {"rules": policy.rule_dicts()}


def egress_log_params(**filters: Any) -> dict[str, Any]:
    params = {k: v for k, v in filters.items() if v is not None}
    if isinstance(params.get("blocked"), bool):
        params["blocked"] = "true" if params["blocked"] else "false"
    if hasattr(params.get("since"), "isoformat"):
        params["since"] = params["since"].isoformat()
    return params


def injection(header: str | None, basic: str | None, query: str | None) -> dict[str, str] | None:
    """How a secret goes into requests, from at most one of the three ways.

    ``header`` is "Name: template" with ``{value}`` where the secret goes (e.g.
    "Authorization: Bearer {value}"); ``basic`` is the user name of HTTP basic auth;
    ``query`` the query parameter to set.
    """
    given = [name for name, v in (("header", header), ("basic", basic), ("query", query)) if v is not None]
    if len(given) > 1:
        raise InvalidRequest(f"give at most one way to inject a secret, not {' and '.join(given)}")
    if header is not None:
        name, sep, template = header.partition(":")
        if not sep or not name.strip() or "{value}" not in template:
            raise InvalidRequest(
                f"header {header!r} must look like 'Name: template' with {{value}} in the template, "
                "e.g. 'Authorization: Bearer {value}'"
            )
        return {"type": "header", "header": name.strip(), "template": template.strip()}
    if basic is not None:
        return {"type": "basic", "username": basic}
    if query is not None:
        return {"type": "query", "param": query}
    return None


def secret_body(
    value: str,
    hosts: Sequence[str],
    inject: Mapping[str, str] | None,
    allow_in_body: bool,
    allow_in_query: bool,
) -> dict[str, Any]:
    """The PUT body; checked through the API's model, whose JSON would hide the value, so it is put back after."""
    if isinstance(hosts, str):
        raise InvalidRequest("hosts is a list of host names, not one string")
    body = build(
        PutSecret,
        value=value,
        hosts=list(hosts),
        inject=dict(inject) if inject is not None else None,
        allow_in_body=allow_in_body,
        allow_in_query=allow_in_query,
    )
    body["value"] = value
    return body
