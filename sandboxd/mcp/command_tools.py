"""Tools that run programs in a sandbox: one command to its end, or a process in the background."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Final

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from sandboxd.errors import Conflict
from sandboxd.mcp.egress_tools import refusal_advice
from sandboxd.mcp.sandbox_tools import SandboxId
from sandboxd.mcp.toolset import ToolSet, caller_of
from sandboxd.models import ExecRequest, StartProcess
from sandboxd.runtime.agent_types import ExecResult, ProcessInfo

tools = ToolSet()

# A model pays for every byte of output in context; the HTTP API's default (1 MiB) is far too much.
DEFAULT_OUTPUT_BYTES: Final = 32 * 1024
DEFAULT_PROCESS_READ_BYTES: Final = 32 * 1024
MAX_PROCESS_WAIT_S: Final = 300.0

ProcessId = Annotated[str, Field(min_length=1, description="The process's 'id', as start_process returned it.")]
Command = Annotated[
    str | None,
    Field(description="A shell command line, run with bash -c (pipes, &&, redirects work). Give this or argv."),
]
Argv = Annotated[
    list[str] | None,
    Field(description='Program and arguments, run without a shell, e.g. ["python3", "app.py"]. Give this or command.'),
]
Cwd = Annotated[str | None, Field(description="Working directory. Default: /workspace.")]
Env = Annotated[dict[str, str] | None, Field(description="Extra environment variables for this command only.")]


class CommandResult(BaseModel):
    exit_code: int | None = Field(description="The command's exit status; null when a signal or the timeout ended it.")
    stdout: str
    stderr: str
    stdout_truncated: bool = Field(description="True when stdout was longer than max_output_bytes and was cut.")
    stderr_truncated: bool
    timed_out: bool = Field(description="True when the command ran past timeout_s and was killed with all it started.")
    signal: int | None = Field(None, description="The signal that ended the command, if one did.")
    duration_ms: float
    egress_advice: str | None = Field(
        None, description="Set when the egress proxy refused a connection during the command: which host, what to do."
    )


class Process(BaseModel):
    id: str = Field(description="Pass this as process_id to read_process_output and kill_process.")
    pid: int
    name: str | None
    argv: list[str]
    cwd: str
    state: str = Field(description="'running' or 'exited'.")
    exit_code: int | None
    signal: int | None
    started_at: datetime
    ended_at: datetime | None


class ProcessOutput(BaseModel):
    stdout: str
    stderr: str
    next_stdout_offset: int = Field(description="Pass as stdout_offset next time to read only newer output.")
    next_stderr_offset: int = Field(description="Pass as stderr_offset next time to read only newer output.")
    more_available: bool = Field(description="True when output past max_bytes is waiting: call again at once.")
    lost_bytes: int = Field(
        description="Output that was discarded before it was read (only the last 1 MiB per stream is kept)."
    )
    state: str = Field(description="'running' or 'exited'.")
    exit_code: int | None


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def command_result(result: ExecResult) -> CommandResult:
    return CommandResult(
        exit_code=result.exit_code,
        stdout=_text(result.stdout),
        stderr=_text(result.stderr),
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        timed_out=result.timed_out,
        signal=result.signal,
        duration_ms=result.duration_ms,
    )


def process_model(info: ProcessInfo) -> Process:
    return Process(
        id=info.id,
        pid=info.pid,
        name=info.name,
        argv=list(info.argv),
        cwd=info.cwd,
        state=info.state,
        exit_code=info.exit_code,
        signal=info.signal,
        started_at=datetime.fromtimestamp(info.started_at, UTC),
        ended_at=datetime.fromtimestamp(info.ended_at, UTC) if info.ended_at is not None else None,
    )


@tools.tool(open_world=True)
async def run_command(
    ctx: Context,
    sandbox_id: SandboxId,
    command: Command = None,
    argv: Argv = None,
    cwd: Cwd = None,
    timeout_s: Annotated[
        float | None,
        Field(gt=0, description="Kill the command (and everything it started) after this many seconds. "
              "Default: the server's, usually 300."),
    ] = None,
    stdin: Annotated[str | None, Field(description="Text to feed to the command's standard input.")] = None,
    env: Env = None,
    max_output_bytes: Annotated[
        int | None,
        Field(
            gt=0,
            description=f"Keep at most this many bytes of stdout and of stderr. Default {DEFAULT_OUTPUT_BYTES}.",
        ),
    ] = None,
) -> CommandResult:
    """Run a command in a sandbox and wait for it to finish; returns exit code, stdout and stderr.

    Use it for anything you would type in a terminal: running scripts and tests, installing
    packages (pip install --user, or a venv), inspecting files (ls, grep, head). Each call is a
    fresh bash: 'cd' and exported variables do not carry over, so pass cwd and env instead.
    Files and background processes do persist. Output beyond max_output_bytes per stream is
    cut and flagged with stdout_truncated / stderr_truncated: for long output, redirect it to a
    file and read the part you need with read_file. Commands run as the unprivileged user
    'sandbox' (no root, no sudo). For servers or jobs longer than a few minutes, use
    start_process instead; a command past timeout_s is killed and comes back with
    timed_out=true.
    """
    caller = caller_of(ctx)
    request = ExecRequest(
        command=command,
        argv=argv,
        cwd=cwd,
        env=env or {},
        stdin=stdin,
        timeout_s=timeout_s,
        max_output_bytes=max_output_bytes or DEFAULT_OUTPUT_BYTES,
    )
    started = time.time()
    result = command_result(await caller.daemon.exec.run(caller.principal, sandbox_id, request))
    if result.exit_code != 0:
        result.egress_advice = await refusal_advice(caller, sandbox_id, result.stdout + result.stderr, started)
    return result


@tools.tool(open_world=True)
async def start_process(
    ctx: Context,
    sandbox_id: SandboxId,
    command: Command = None,
    argv: Argv = None,
    cwd: Cwd = None,
    env: Env = None,
    name: Annotated[str | None, Field(max_length=128, description="A name to recognise the process by.")] = None,
) -> Process:
    """Start a command in the background and return at once with its process id.

    Use it for servers, watchers and jobs that run longer than a few minutes. The process keeps
    running between calls; read what it prints with read_process_output and stop it with
    kill_process. It has no time limit, so stop it when it is no longer needed.
    """
    caller = caller_of(ctx)
    request = StartProcess(command=command, argv=argv, cwd=cwd, env=env or {}, name=name)
    return process_model(await caller.daemon.exec.start_process(caller.principal, sandbox_id, request))


@tools.tool(read_only=True)
async def read_process_output(
    ctx: Context,
    sandbox_id: SandboxId,
    process_id: ProcessId,
    stdout_offset: Annotated[int, Field(ge=0, description="Where to read stdout from: 0, or next_stdout_offset.")] = 0,
    stderr_offset: Annotated[int, Field(ge=0, description="Where to read stderr from: 0, or next_stderr_offset.")] = 0,
    wait_s: Annotated[
        float,
        Field(ge=0, le=MAX_PROCESS_WAIT_S, description="First wait up to this many seconds for the process to exit."),
    ] = 0,
    max_bytes: Annotated[
        int,
        Field(
            gt=0,
            le=1024 * 1024,
            description=f"Return at most this many bytes per stream. Default {DEFAULT_PROCESS_READ_BYTES}.",
        ),
    ] = DEFAULT_PROCESS_READ_BYTES,
) -> ProcessOutput:
    """Read what a background process (from start_process) has printed, and whether it still runs.

    Reads from the offsets given; pass back next_stdout_offset / next_stderr_offset to get only
    output that is new since the last call. With wait_s, first waits for the process to exit
    (up to wait_s seconds) - useful to collect the result of a job. state says 'running' or
    'exited', with exit_code once it has exited.
    """
    caller = caller_of(ctx)
    if wait_s > 0:
        await caller.daemon.exec.wait(caller.principal, sandbox_id, process_id, wait_s)
    out = await caller.daemon.exec.read_output(caller.principal, sandbox_id, process_id, stdout_offset, stderr_offset)
    stdout, stdout_next = _page(out.stdout, out.stdout_offset, max_bytes)
    stderr, stderr_next = _page(out.stderr, out.stderr_offset, max_bytes)
    return ProcessOutput(
        stdout=_text(stdout),
        stderr=_text(stderr),
        next_stdout_offset=stdout_next,
        next_stderr_offset=stderr_next,
        more_available=stdout_next < out.stdout_offset or stderr_next < out.stderr_offset,
        lost_bytes=out.stdout_dropped + out.stderr_dropped,
        state=out.state,
        exit_code=out.exit_code,
    )


@tools.tool(destructive=True)
async def kill_process(
    ctx: Context,
    sandbox_id: SandboxId,
    process_id: ProcessId,
    signal: Annotated[
        str,
        Field(description="TERM (ask it to stop), INT (like Ctrl-C), KILL (stop it and all it started at once)."),
    ] = "TERM",
) -> Process:
    """Send a signal to a background process started with start_process, by default TERM to stop it.

    Returns the process as it is right after the signal; a process may take a moment to exit
    after TERM or INT (check with read_process_output, or send KILL). A process that has
    already exited is returned as it is, with its exit code.
    """
    caller = caller_of(ctx)
    try:
        info = await caller.daemon.exec.signal(caller.principal, sandbox_id, process_id, signal)
    except Conflict:
        # Stopping a process that has already exited has done what was asked: say how it ended.
        info = await caller.daemon.exec.get_process(caller.principal, sandbox_id, process_id)
        if info.state != "exited":
            raise
    return process_model(info)


def _page(data: bytes, end_offset: int, max_bytes: int) -> tuple[bytes, int]:
    """At most ``max_bytes`` of ``data`` (which ends at ``end_offset``), and the offset after them."""
    if len(data) <= max_bytes:
        return data, end_offset
    return data[:max_bytes], end_offset - len(data) + max_bytes
