"""What the sandbox supervisor answers, as plain values.

Kept apart from ``supervisor_client`` so the service and API layers can name these
types without importing httpx. Output is bytes here; encoding it for a client (text
or base64) is the API layer's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

StreamName = Literal["stdout", "stderr"]
ProcessState = Literal["running", "exited"]
FileType = Literal["file", "dir", "symlink", "other"]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """How a command ended. ``exit_code`` is None when a signal ended it (then ``signal`` says which).

    In a streamed exec the output went by as chunks, so ``stdout`` and ``stderr`` are empty.
    """

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: float
    timed_out: bool
    signal: int | None


@dataclass(frozen=True, slots=True)
class ExecChunk:
    """Output of a streamed exec, as the command wrote it (not split on lines)."""

    stream: StreamName
    data: bytes


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    id: str
    pid: int
    name: str | None
    argv: tuple[str, ...]
    cwd: str
    state: ProcessState
    exit_code: int | None
    signal: int | None
    started_at: float  # unix time
    ended_at: float | None


@dataclass(frozen=True, slots=True)
class ProcessOutput:
    """Output of a background process from the offsets asked for.

    The supervisor keeps the last 1 MiB of each stream; ``*_dropped`` counts bytes
    that were gone before the requested offset. Pass ``stdout_offset`` and
    ``stderr_offset`` back to read on. Once ``state`` is "exited", everything the
    process wrote before exiting is in the answer or before it.
    """

    stdout: bytes
    stderr: bytes
    stdout_offset: int
    stderr_offset: int
    stdout_dropped: int
    stderr_dropped: int
    state: ProcessState
    exit_code: int | None


@dataclass(frozen=True, slots=True)
class FileInfo:
    name: str
    path: str  # absolute, inside the sandbox
    type: FileType
    size: int
    mode: int  # permission bits, e.g. 0o644
    mtime: float  # unix time
    target: str | None = None  # where a symlink points

    @property
    def mode_octal(self) -> str:
        return f"{self.mode:04o}"


__all__ = ["ExecChunk", "ExecResult", "FileInfo", "ProcessInfo", "ProcessOutput"]
