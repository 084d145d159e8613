"""The shapes of requests and answers, shared by the HTTP API, the MCP tools and the SDK.

Requests forbid unknown fields, so a typo ("memroy_mb") is a 422 that names the
field instead of a silently ignored setting. Limits are checked against the
operator's maxima in the service, where the settings are known.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_LABEL_KEY = re.compile(r"^[a-z0-9]([a-z0-9._/-]{0,62})$")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value


SafeStr = Annotated[str, AfterValidator(_no_nul)]


def _env(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 256:
        raise ValueError("at most 256 environment variables")
    for name, val in value.items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid environment variable name (letters, digits, _; not first a digit)")
        _no_nul(val)
        if len(val) > 32768:
            raise ValueError(f"value of {name} is longer than 32768 characters")
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 64:
        raise ValueError("at most 64 labels")
    for key, val in value.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(f"label key {key!r} must be 1-63 of a-z 0-9 . _ / - and start with a letter or digit")
        if len(val) > 256 or "\x00" in val:
            raise ValueError(f"label {key!r}: value must be at most 256 characters without NUL bytes")
    return value


EnvMap = Annotated[dict[str, str], AfterValidator(_env)]
LabelMap = Annotated[dict[str, str], AfterValidator(_labels)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- egress and secrets (sandboxd.service.egress / secrets) ---------------------------------
# Rules and secrets are checked by the egress proxy's own parsers (egress_proxy.rules,
# egress_proxy.credentials) in the services, so the API refuses exactly what the proxy would.


class EgressRule(Request):
    action: Literal["allow", "deny"]
    host: SafeStr = Field(
        max_length=255, description="api.example.com, *.example.com (any subdomain), an IP address, or * (any host)."
    )
    port: int | None = Field(None, description="Only this port; null: any port.")
    methods: list[SafeStr] | None = Field(None, max_length=16, description="Only these HTTP methods; null: any.")
    path_prefix: SafeStr | None = Field(None, max_length=2048, description="Only paths starting with this.")
    name: SafeStr | None = Field(None, max_length=128, description="A label, shown in the reason of a refusal.")


class EgressPolicyIn(Request):
    """Allow and deny rules; nothing is allowed unless a rule allows it, and a matching deny rule wins."""

    rules: list[EgressRule] = Field(default_factory=list, max_length=1000)

    def rule_dicts(self) -> list[dict[str, object]]:
        return [rule.model_dump(exclude_none=True) for rule in self.rules]


class EgressPolicyOut(BaseModel):
    tenant_id: str
    sandbox_id: str | None = None
    rules: list[dict[str, object]]
    source: Literal["sandbox", "tenant", "default"] = Field(
        description="sandbox: its own rules; tenant: the tenant default; default: none set, so everything is denied."
    )


def check_secret_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid secret name (an environment variable name: letters, digits, _)")
    return value


SecretName = Annotated[str, AfterValidator(check_secret_name)]


class SecretInjection(Request):
    type: Literal["header", "basic", "query"]
    header: SafeStr | None = Field(None, max_length=128, description="header: the header to set.")
    template: SafeStr | None = Field(
        None, max_length=1024, description="header: its value, with {value} where the secret goes."
    )
    username: SafeStr | None = Field(None, max_length=256, description="basic: the user name.")
    param: SafeStr | None = Field(None, max_length=128, description="query: the query parameter to set.")


class PutSecret(Request):
    value: SecretStr = Field(description="Write-only: never returned, logged or audited.")
    hosts: list[SafeStr] = Field(min_length=1, max_length=64, description="Where it may be sent: exact or *.domain.")
    inject: SecretInjection | None = Field(
        None, description="Added to every request for its hosts, replacing what the sandbox sent."
    )
    allow_in_body: bool = Field(False, description="Replace its placeholder in request bodies too.")
    allow_in_query: bool = Field(False, description="Replace its placeholder in query strings too.")


class SecretOut(BaseModel):
    name: str
    hosts: list[str]
    inject: dict[str, object] | None
    allow_in_body: bool
    allow_in_query: bool
    created_at: datetime
    updated_at: datetime


class SecretList(BaseModel):
    secrets: list[SecretOut]


class EgressLogEntry(BaseModel):
    id: int
    ts: datetime
    method: str | None
    scheme: str | None
    host: str | None
    port: int | None
    path: str | None = Field(description="Query values redacted; placeholders shown as {NAME}.")
    status: int | None
    bytes_out: int
    bytes_in: int
    duration_ms: float | None
    secrets: list[str] = Field(description="Names of the secrets the proxy put into the request.")
    blocked: bool
    reason: str | None


class EgressLogOut(BaseModel):
    sandbox_id: str
    records: list[EgressLogEntry]
    next_before: int | None = Field(description="Pass as 'before' for the next (older) page; null at the end.")


# --- sandboxes -------------------------------------------------------------------------------

SandboxState = Literal[
    "creating", "running", "paused", "stopped", "hibernated", "failed", "deleting",
    # passing states of suspension and rollback (sandboxd.service.lifecycle)
    "hibernating", "waking", "restoring",
]
IdleAction = Literal["pause", "hibernate", "delete"]


class CreateSandbox(Request):
    image: SafeStr | None = Field(None, max_length=255, description="A local image; default: the sandbox image.")
    env: EnvMap = Field(default_factory=dict)
    cpus: float | None = Field(None, gt=0, description="CPU quota in cores, e.g. 0.5.")
    memory_mb: int | None = Field(None, gt=0, description="Memory limit in MiB; swap is held equal to it.")
    pids: int | None = Field(None, gt=0, description="Most processes and threads at once.")
    nofile: int | None = Field(None, gt=0, description="Open file limit.")
    disk_gb: int | None = Field(None, gt=0, description="Writable layer size; needs overlay2 on xfs with pquota.")
    labels: LabelMap = Field(default_factory=dict)
    idle_timeout_s: int | None = Field(None, gt=0, le=30 * 86400)
    max_lifetime_s: int | None = Field(None, gt=0, le=365 * 86400)
    idle_action: IdleAction | None = Field(
        None, description="What the idle timeout does: pause, hibernate (the default) or delete."
    )
    on_wake: SafeStr | None = Field(
        None, max_length=16384, description="A shell command started in the background each time the sandbox wakes."
    )
    egress: EgressPolicyIn | None = Field(
        None, description="Its egress rules; default: the tenant's default policy (which denies everything unless set)."
    )
    secrets: list[SecretName] = Field(
        default_factory=list,
        max_length=64,
        description="Stored secrets it may use; each becomes an environment variable holding a placeholder.",
    )


class LimitsOut(BaseModel):
    cpus: float
    memory_mb: int
    pids: int
    nofile: int
    disk_gb: int | None = None


class SandboxOut(BaseModel):
    id: str
    state: SandboxState
    image: str
    labels: dict[str, str]
    limits: LimitsOut
    env: dict[str, str]
    idle_timeout_s: int | None = None
    max_lifetime_s: int | None = None
    created_at: datetime
    updated_at: datetime
    error: str | None = None


class SandboxList(BaseModel):
    sandboxes: list[SandboxOut]


# --- exec ------------------------------------------------------------------------------------


class CommandSpec(Request):
    argv: list[SafeStr] | None = Field(None, min_length=1, max_length=4096, description="Program and arguments.")
    command: SafeStr | None = Field(None, max_length=131072, description="A shell string, run with bash -c.")
    cwd: SafeStr | None = Field(None, max_length=4096, description="Working directory; default /workspace.")
    env: EnvMap = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_of_argv_or_command(self) -> CommandSpec:
        if (self.argv is None) == (self.command is None):
            raise ValueError("give exactly one of 'argv' (a list) or 'command' (a shell string)")
        return self

    def to_argv(self) -> list[str]:
        return list(self.argv) if self.argv is not None else ["bash", "-c", self.command or ""]


class ExecRequest(CommandSpec):
    user: SafeStr | None = Field(None, description="Only the sandbox user is supported: 'sandbox' or '1000'.")
    stdin: str | None = Field(None, max_length=16 * 1024 * 1024, description="Text fed to the command's stdin.")
    stdin_b64: str | None = Field(None, description="Bytes for stdin, base64; instead of 'stdin'.")
    timeout_s: float | None = Field(None, gt=0, description="Kill the command and all it spawned after this long.")
    max_output_bytes: int | None = Field(None, gt=0, description="Output kept per stream; the rest is dropped.")
    encoding: Literal["utf-8", "base64"] = "utf-8"

    @model_validator(mode="after")
    def _one_stdin(self) -> ExecRequest:
        if self.stdin is not None and self.stdin_b64 is not None:
            raise ValueError("give at most one of 'stdin' and 'stdin_b64'")
        return self


class ExecOut(BaseModel):
    exit_code: int | None
    stdout: str
    stderr: str
    encoding: Literal["utf-8", "base64"] = "utf-8"
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: float
    timed_out: bool
    signal: int | None = None


class StartProcess(CommandSpec):
    name: SafeStr | None = Field(None, max_length=128)


class SignalRequest(Request):
    signal: str | int = Field("TERM", description="TERM, KILL, INT, HUP, ... or a number; KILL takes the whole tree.")


# --- files -----------------------------------------------------------------------------------


class MkdirRequest(Request):
    path: SafeStr = Field(max_length=4096)
    parents: bool = True
    mode: str = Field("0755", pattern=r"^0?[0-7]{3,4}$")


class MoveRequest(Request):
    src: SafeStr = Field(max_length=4096)
    dst: SafeStr = Field(max_length=4096)
    overwrite: bool = False


# --- tenants and keys ------------------------------------------------------------------------


class CreateTenant(Request):
    name: str = Field(min_length=1, max_length=64)


class CreateKey(Request):
    name: str = Field("", max_length=128)
    admin: bool = False


# --- snapshots, suspension and lifecycle (sandboxd.service.snapshots / lifecycle) -----------

SnapshotState = Literal["creating", "ready", "deleting"]


class CreateSnapshot(Request):
    name: SafeStr = Field("", max_length=128)
    labels: LabelMap = Field(default_factory=dict)


class SnapshotOut(BaseModel):
    id: str
    name: str
    state: SnapshotState
    labels: dict[str, str]
    sandbox_id: str | None = Field(description="The sandbox it was taken of; None when imported.")
    parent_id: str | None = Field(description="The snapshot it is built on; it stores only what changed since.")
    size_bytes: int | None = Field(description="What this snapshot adds on top of its parent or base image.")
    total_bytes: int | None = Field(description="The whole filesystem, base image included.")
    image: str
    created_at: datetime


class SnapshotList(BaseModel):
    snapshots: list[SnapshotOut]


class RestoreRequest(Request):
    snapshot_id: str = Field(max_length=64)


class ForkRequest(Request):
    count: int = Field(1, ge=1, le=64)
    labels: LabelMap = Field(default_factory=dict)
    env: EnvMap | None = Field(None, description="Replaces the environment the snapshot's sandbox had.")


class ForkOut(BaseModel):
    sandboxes: list[SandboxOut]


class LifecycleUpdate(Request):
    """Change a sandbox's lifecycle policy; fields left out keep their value, null clears one."""

    idle_timeout_s: int | None = Field(None, gt=0, le=30 * 86400)
    idle_action: IdleAction | None = None
    max_lifetime_s: int | None = Field(None, gt=0, le=365 * 86400)
    on_wake: SafeStr | None = Field(None, max_length=16384)


class LifecycleOut(BaseModel):
    sandbox_id: str
    state: SandboxState
    idle_timeout_s: int | None
    idle_action: IdleAction
    max_lifetime_s: int | None
    on_wake: str | None
    idle_for_s: float
    busy: bool
    source: dict[str, str] = Field(description="Where each effective value comes from: sandbox, tenant or server.")


class LifecycleDefaultsIn(Request):
    idle_timeout_s: int | None = Field(None, gt=0, le=30 * 86400)
    idle_action: IdleAction | None = None
    max_lifetime_s: int | None = Field(None, gt=0, le=365 * 86400)


class LifecycleDefaultsOut(BaseModel):
    tenant_id: str
    idle_timeout_s: int | None
    idle_action: IdleAction | None
    max_lifetime_s: int | None


class FileChange(BaseModel):
    path: str
    change: Literal["added", "modified", "deleted"]
    type: Literal["file", "directory", "symlink", "other"]
    size_before: int | None = None
    size_after: int | None = None
    diff: str | None = Field(None, description="Unified diff, for text files when asked for.")


class ChangesOut(BaseModel):
    base: str = Field(description="What is compared from: a snapshot id.")
    target: str = Field(description="What is compared to: a snapshot id or a sandbox id (its live filesystem).")
    path: str
    changes: list[FileChange]
    truncated: bool = Field(description="True when more changes exist than were listed.")
