"""What the SDK hands back: typed, immutable views of the API's answers.

Sandboxes, exec results, snapshots, changes, lifecycle, egress and secrets are
the API's own models (``sandboxd.models``), so the SDK and the server cannot
drift apart. The rest are small frozen dataclasses built
by ``from_wire``, which keeps any field a newer server adds in ``extra`` instead of
failing on it: an old SDK keeps working against a newer daemon.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from sandboxd.errors import SandboxdError, error_from_code
from sandboxd.models import (
    ChangesOut,
    EgressLogOut,
    EgressPolicyOut,
    ExecOut,
    LifecycleDefaultsOut,
    LifecycleOut,
    SandboxOut,
    SecretOut,
    SnapshotOut,
)
from sandboxd.models import EgressLogEntry as EgressLogEntry  # an entry of EgressLog.records
from sandboxd.models import EgressRule as EgressRule  # one allow or deny rule, for set_policy
from sandboxd.models import FileChange as FileChange  # an entry of Changes.changes

ExecResult = ExecOut
"""The result of a command: exit code, stdout, stderr, truncated flags, duration, timeout, signal."""

SandboxInfo = SandboxOut
"""A sandbox as the API describes it: id, state, image, labels, limits, env, timestamps."""

SnapshotInfo = SnapshotOut
"""A snapshot as the API describes it: id, name, state, labels, the sandbox it was taken of, sizes."""

Changes = ChangesOut
"""What changed between a snapshot and a sandbox (or another snapshot): ``changes`` lists ``FileChange``s."""

LifecycleInfo = LifecycleOut
"""A sandbox's effective idle policy, how long it has been idle, and where each value comes from."""

LifecycleDefaults = LifecycleDefaultsOut
"""A tenant's default idle policy; None fields fall back to the server's."""

EgressPolicy = EgressPolicyOut
"""The rules a sandbox's outbound traffic is held to, and whether they are its own or its tenant's."""

EgressLog = EgressLogOut
"""One page of a sandbox's egress log, newest first; ``next_before`` pages on."""

SecretInfo = SecretOut
"""A stored secret as the API shows it: name, hosts, injection; never the value."""


class _Wire:
    """Construction from an API answer: known fields by name, the rest kept in ``extra``."""

    __slots__ = ()

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Self:
        """Raises SandboxdError if the answer lacks a field this type cannot do without."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}  # type: ignore[arg-type]
        known = {k: v for k, v in body.items() if k in names}
        extra = {k: v for k, v in body.items() if k not in names}
        try:
            return cls(**known, extra=extra)  # type: ignore[call-arg]
        except TypeError as exc:
            raise SandboxdError(f"unexpected answer from sandboxd for {cls.__name__}: {exc}") from None


@dataclass(frozen=True, slots=True)
class ProcessInfo(_Wire):
    """A background process: ``state`` is "running" until it ends, then ``exit_code`` or ``signal`` say how."""

    id: str
    state: str
    pid: int | None = None
    name: str | None = None
    argv: list[str] = field(default_factory=list)
    cwd: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class ProcessOutput(_Wire):
    """Output of a background process from the offsets asked for.

    Pass ``stdout_offset`` and ``stderr_offset`` back to read on; ``*_dropped``
    counts bytes the sandbox no longer kept when they were asked for. Once
    ``state`` is "exited", everything the process wrote is in this answer or before.
    """

    stdout: str
    stderr: str
    stdout_offset: int = 0
    stderr_offset: int = 0
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    state: str | None = None
    exit_code: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def _mode_bits(mode: int | str | None) -> int | None:
    if mode is None or isinstance(mode, int):
        return mode
    return int(mode, 8)


@dataclass(frozen=True, slots=True)
class FileInfo(_Wire):
    """One entry of a sandbox's filesystem; ``type`` is "file", "dir", "symlink" or "other"."""

    name: str
    type: str
    path: str | None = None
    size: int = 0
    mode: int | None = None  # permission bits, e.g. 0o644
    mtime: float | None = None  # unix time
    target: str | None = None  # where a symlink points
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # The API may spell the mode as an octal string ("0644") or as the number itself.
        object.__setattr__(self, "mode", _mode_bits(self.mode))

    @property
    def mode_octal(self) -> str | None:
        return None if self.mode is None else f"{self.mode:04o}"


@dataclass(frozen=True, slots=True)
class Tenant(_Wire):
    id: str
    name: str
    created_at: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class ApiKey(_Wire):
    """An API key; ``key`` holds the plaintext only in the answer to its creation, which is its one showing."""

    id: str
    tenant_id: str
    name: str
    admin: bool
    created_at: float
    revoked_at: float | None = None
    key: str | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class AuditRecord(_Wire):
    seq: int
    ts: float
    action: str
    result: str
    tenant_id: str | None = None
    key_id: str | None = None
    sandbox_id: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    prev_hash: str = ""
    hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class AuditVerification(_Wire):
    """Whether the hash chain holds; if not, the first record that breaks it and why."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


# --- streamed exec ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputEvent:
    """A chunk of output as the command wrote it: exact bytes (the stream is read as base64)."""

    stream: Literal["stdout", "stderr"]
    data: bytes

    @property
    def text(self) -> str:
        """The chunk as text; a character split across two chunks decodes as U+FFFD in each."""
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class ExitEvent(_Wire):
    """The last event of a stream: how the command ended (its output came in the events before)."""

    exit_code: int | None
    timed_out: bool = False
    signal: int | None = None
    duration_ms: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


ExecEvent = OutputEvent | ExitEvent


def exec_event(event: str, data: str) -> ExecEvent | None:
    """One SSE event of /exec/stream as a typed event; None for kinds this SDK does not know.

    Raises:
        SandboxdError: the stream carried an ``error`` event (the subclass its code names).
    """
    if event in ("stdout", "stderr"):
        return OutputEvent(stream=event, data=base64.b64decode(json.loads(data)["data"]))
    if event == "exit":
        body = json.loads(data)
        body.pop("encoding", None)
        return ExitEvent.from_wire(body)
    if event == "error":
        body = json.loads(data)
        raise error_from_code(body.get("error", "internal"), body.get("message", "the command failed"))
    return None
