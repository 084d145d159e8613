"""sandboxd supervisor: exec, background processes and files inside one sandbox.

Runs as the sandbox's main process, as the sandbox user, with the standard library
only (Python >= 3.11), because the Docker Engine API can neither time out nor kill
an exec and costs ~70 ms per call, where this answers in about a millisecond. The
daemon talks to it over HTTP/1.1 with keep-alive on a unix socket in a directory
bind-mounted from the host:

    python3 supervisor.py --socket /run/sandboxd/sock [--root-cwd /workspace]

Wire protocol. Bodies are JSON unless said otherwise. Errors answer 4xx/5xx with
``{"error": code, "message": text}``, codes as in ``sandboxd/errors.py``:
invalid_request, payload_too_large, not_found, conflict, already_exists,
is_a_directory, not_a_directory, permission_denied, internal.

    GET  /health                        {"ok": true, "pid", "version": 1, "subreaper": bool}
    POST /exec                          {"argv", "cwd"?, "env"?, "stdin"? (base64), "timeout"? (s),
                                         "max_output"? (bytes per stream, default 1 MiB)}
                                        -> {"exit_code", "signal", "stdout", "stderr" (base64),
                                            "stdout_truncated", "stderr_truncated", "duration_ms",
                                            "timed_out"}
    POST /exec/stream                   same body; a chunked stream of NDJSON lines
                                        {"stream": "stdout"|"stderr", "data": base64} as output
                                        arrives, then {"exit": result without stdout/stderr}
    POST /processes                     {"argv", "cwd"?, "env"?, "name"?} -> process
    GET  /processes                     {"processes": [process, ...]} (running and exited)
    GET  /processes/ID                  process: {"id", "pid", "name", "argv", "cwd", "state":
                                        "running"|"exited", "exit_code", "signal", "started_at",
                                        "ended_at"}
    GET  /processes/ID/output?stdout_offset=N&stderr_offset=M
                                        {"stdout", "stderr" (base64), "stdout_offset",
                                         "stderr_offset" (where to read next), "stdout_dropped",
                                         "stderr_dropped" (bytes lost before the oldest kept one),
                                         "state", "exit_code"}
    POST /processes/ID/stdin[?eof=1]    raw bytes body -> {"written": n}
    POST /processes/ID/signal           {"signal": "TERM"|"KILL"|"INT"|... or a number}
    POST /processes/ID/wait?timeout=S   process, once exited or after S seconds
    DELETE /processes/ID                forget an exited process

    GET    /files/content?path=         raw bytes, chunked
    PUT    /files/content?path=&mode=0644&parents=1   raw body -> stat
    GET    /files/stat?path=            {"name", "path", "type": "file"|"dir"|"symlink"|"other",
                                         "size", "mode": "0644", "mtime", "target"?}
    GET    /files/list?path=            {"entries": [stat, ...]}
    POST   /files/mkdir                 {"path", "parents"?, "mode"?} -> stat
    DELETE /files?path=&recursive=0|1   {"ok": true}
    POST   /files/move                  {"src", "dst", "overwrite"?} -> stat of dst
    GET    /files/archive?path=DIR      a tar stream of DIR's contents
    PUT    /files/archive?path=DIR      a tar (or tar.gz) body, extracted into DIR -> {"extracted": n}

    POST /pty                           {"argv"? (default: a login shell), "cwd"?, "env"?, "rows",
                                         "cols", "term"?} -> 101 Switching Protocols, then the
                                        connection carries frames both ways: 1 type byte, a 4-byte
                                        big-endian length, the payload. Client to us: "d" input
                                        bytes, "r" resize (rows, cols as two big-endian uint16),
                                        "k" hang up. Us to client: "d" terminal output, then one
                                        "x" with {"exit_code", "signal"} as JSON when the shell ends.

Semantics worth knowing:
- Relative paths and cwds are relative to --root-cwd. Paths with NUL bytes are refused.
- A command runs in its own session, tagged with SANDBOXD_EXEC_ID in its environment.
  On timeout, on a KILL signal, or when the client of an exec goes away, the whole
  tree dies: the process group, every descendant, and every process carrying the tag
  (which catches those that called setsid), swept from /proc until none is left.
- An exec returns when its main process exits; children it left in the background
  keep running, and their later output is not collected.
- An argv whose program cannot be run gives exit code 127 (not found) or 126 (not
  executable), as a shell would; starting such a background process is an error.
- Output over max_output is read and dropped, never buffered. Background processes
  keep the last 1 MiB of each stream.
- An archive member that would land outside DIR (absolute, "..", a link pointing out)
  stops the upload with invalid_request; members before it stay extracted.

The supervisor makes itself a child subreaper, so orphans of the commands it runs
come back to it, and one thread reaps every child.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import errno
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import socketserver
import stat
import struct
import sys
import termios
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from subprocess import DEVNULL, PIPE, Popen
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    import tarfile

VERSION = 1
EXEC_MARKER = "SANDBOXD_EXEC_ID"
CHUNK = 64 * 1024
DEFAULT_MAX_OUTPUT = 1 << 20
RING_CAPACITY = 1 << 20
MAX_JSON_BODY = 64 << 20
MAX_FINISHED_PROCESSES = 256
STDIN_WRITE_TIMEOUT = 30.0
# Bytes of an unread request body worth reading to keep the connection; beyond this we close it.
DRAIN_LIMIT = 1 << 20


def log(message: str) -> None:
    sys.stderr.write(f"sandboxd-supervisor: {message}\n")
    sys.stderr.flush()


# --- errors --------------------------------------------------------------------------------

_STATUS = {
    "invalid_request": 422,
    "payload_too_large": 413,
    "not_found": 404,
    "conflict": 409,
    "already_exists": 409,
    "is_a_directory": 409,
    "not_a_directory": 409,
    "permission_denied": 403,
    "internal": 500,
}

_ERRNO_CODES = {
    errno.ENOENT: "not_found",
    errno.EISDIR: "is_a_directory",
    errno.ENOTDIR: "not_a_directory",
    errno.EACCES: "permission_denied",
    errno.EPERM: "permission_denied",
    errno.EROFS: "permission_denied",
    errno.EEXIST: "already_exists",
    errno.ENOTEMPTY: "conflict",
    errno.EBUSY: "conflict",
    errno.EXDEV: "conflict",
    errno.ENAMETOOLONG: "invalid_request",
    errno.ELOOP: "invalid_request",
    errno.EINVAL: "invalid_request",
}


class ApiError(Exception):
    """An answer for the client: a code from sandboxd/errors.py and a message for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = _STATUS.get(code, 500)


class ClientGone(Exception):
    """The HTTP client hung up; nobody is left to answer."""


def error_from_os(exc: OSError, path: str | None = None) -> ApiError:
    code = _ERRNO_CODES.get(exc.errno or 0, "internal")
    where = path or exc.filename or ""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOTEMPTY:
        reason = "directory is not empty (pass recursive=1 to delete it with its contents)"
    return ApiError(code, f"{where}: {reason}" if where else reason)


# --- children: spawning, reaping, killing ----------------------------------------------------


def become_subreaper() -> bool:
    """Orphans of our commands then come back to us (not to PID 1), so we can reap and find them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


class Child:
    """A spawned command: its pipes, the tag that finds its descendants, and how it ended."""

    def __init__(self, popen: Popen[bytes], marker: str) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.marker = marker
        self.status: int | None = None
        self.ended_at: float | None = None
        self.exited = threading.Event()
        # The reaper writes here so a poll() loop over the pipes wakes on exit too.
        self.exit_r, self._exit_w = os.pipe()
        self._lock = threading.Lock()
        self._closed = False

    def on_exit(self, status: int) -> None:
        with self._lock:
            self.status = status
            self.ended_at = time.time()
            # Popen must never wait() on its own: the pid may already belong to someone else.
            self.popen.returncode = os.waitstatus_to_exitcode(status)
            if not self._closed:
                os.write(self._exit_w, b"x")
        self.exited.set()

    @property
    def exit_code(self) -> int | None:
        if self.status is None or not os.WIFEXITED(self.status):
            return None
        return os.WEXITSTATUS(self.status)

    @property
    def signal(self) -> int | None:
        if self.status is None or not os.WIFSIGNALED(self.status):
            return None
        return os.WTERMSIG(self.status)

    def kill_tree(self) -> None:
        # Once the main process is reaped its pid (and so its group id) may be reused by a
        # new command; from then on only the marker can say what is ours.
        kill_tree(self.pid, self.marker, leader_known=not self.exited.is_set())

    def close_exit_pipe(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self.exit_r)
                os.close(self._exit_w)


class Reaper:
    """The only place that calls wait(): every child, and every orphan handed back to us.

    A single reaper avoids the race where two waiters fight over one exit status,
    and spawning under the same lock that delivers exits means a command that ends
    before ``spawn`` returns is never missed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spawned = threading.Condition(self._lock)
        self._generation = 0
        self._children: dict[int, Child] = {}

    def start(self) -> None:
        threading.Thread(target=self._run, name="reaper", daemon=True).start()

    def spawn(
        self, argv: list[str], cwd: str, env: dict[str, str], marker: str, stdin: bool, tty: int | None = None
    ) -> Child:
        with self._lock:
            if tty is None:
                popen = Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=PIPE if stdin else DEVNULL,
                    stdout=PIPE,
                    stderr=PIPE,
                    bufsize=0,
                    start_new_session=True,
                    close_fds=True,
                )
            else:
                popen = Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=tty,
                    stdout=tty,
                    stderr=tty,
                    bufsize=0,
                    start_new_session=True,
                    close_fds=True,
                    preexec_fn=_take_controlling_terminal,
                )
            child = Child(popen, marker)
            self._children[child.pid] = child
            self._generation += 1
            self._spawned.notify()
        return child

    def running(self) -> list[Child]:
        with self._lock:
            return list(self._children.values())

    def _run(self) -> None:
        while True:
            with self._lock:
                generation = self._generation
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                with self._lock:
                    while self._generation == generation:
                        self._spawned.wait()
                continue
            except InterruptedError:
                continue
            with self._lock:
                child = self._children.pop(pid, None)
            if child is not None:
                child.on_exit(status)


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, pgrp, session) of every live (not zombie) process we can see."""
    table: dict[int, tuple[int, int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        if fields[0] in (b"Z", b"X"):
            continue
        table[int(name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


def _carries_marker(pid: int, entry: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return entry in f.read().split(b"\0")
    except OSError:
        return False


def find_tree(leader: int | None, marker: str) -> set[int]:
    """Every live process that belongs to the command started as ``leader`` or tagged ``marker``."""
    table = _proc_table()
    protected = {os.getpid()}
    parent = os.getppid()
    while parent > 1 and parent not in protected:
        protected.add(parent)
        parent = table.get(parent, (0, 0, 0))[0]
    entry = f"{EXEC_MARKER}={marker}".encode()
    found = {
        pid
        for pid, (_, pgrp, sid) in table.items()
        if (leader is not None and leader in (pid, pgrp, sid)) or _carries_marker(pid, entry)
    }
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(found if leader is None else found | {leader})
    while stack:
        for kid in children.get(stack.pop(), ()):
            if kid not in found:
                found.add(kid)
                stack.append(kid)
    return found - protected


def kill_tree(leader: int, marker: str, leader_known: bool = True, give_up_after: float = 5.0) -> None:
    """SIGKILL the command and everything it spawned, until /proc shows none of it alive."""
    deadline = time.monotonic() + give_up_after
    while True:
        if leader_known:
            try:
                os.killpg(leader, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        victims = find_tree(leader if leader_known else None, marker)
        if not victims or time.monotonic() > deadline:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        # SIGKILL lands asynchronously; give it a moment before looking again.
        time.sleep(0.002)


# --- running a command -----------------------------------------------------------------------


class Capture:
    """The first ``limit`` bytes of a stream; the rest is counted and dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> bytes:
        """Keep what fits and return it (so a stream can forward exactly what is kept)."""
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        self.data += chunk
        return chunk


class OutputRing:
    """The last ``capacity`` bytes of a stream, addressed by absolute offsets."""

    def __init__(self, capacity: int = RING_CAPACITY) -> None:
        self.capacity = capacity
        self._buf = bytearray()
        self._start = 0  # absolute offset of _buf[0]
        self._lock = threading.Lock()

    def append(self, data: bytes) -> None:
        with self._lock:
            self._buf += data
            extra = len(self._buf) - self.capacity
            if extra > 0:
                del self._buf[:extra]
                self._start += extra

    def read(self, offset: int) -> tuple[bytes, int, int]:
        """(data from ``offset`` on, next offset, bytes lost between ``offset`` and the data)."""
        with self._lock:
            end = self._start + len(self._buf)
            offset = min(max(offset, 0), end)
            dropped = max(self._start - offset, 0)
            begin = max(offset, self._start)
            return bytes(self._buf[begin - self._start :]), end, dropped


def _read_some(fd: int) -> bytes | None:
    """Whatever the pipe holds now; b"" at end of stream, None if nothing is ready."""
    try:
        return os.read(fd, CHUNK)
    except BlockingIOError:
        return None


def pump(
    child: Child,
    on_output: Callable[[str, bytes], None],
    *,
    stdin_data: bytes | None = None,
    deadline: float | None = None,
    client: socket.socket | None = None,
) -> str:
    """Move bytes between a command and us until it exits: "exited", "timeout" or "client_gone".

    On "exited" whatever the command wrote before exiting has been read; output of
    children it left behind is not waited for, or an exec of ``cmd &`` never returns.
    """
    poller = select.poll()
    outputs: dict[int, str] = {}
    for name, pipe in (("stdout", child.popen.stdout), ("stderr", child.popen.stderr)):
        if pipe is not None:
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            poller.register(fd, select.POLLIN)
            outputs[fd] = name
    poller.register(child.exit_r, select.POLLIN)

    stdin = child.popen.stdin
    stdin_fd = -1
    pending = memoryview(stdin_data or b"")
    if stdin is not None and stdin_data is not None:
        if pending:
            stdin_fd = stdin.fileno()
            os.set_blocking(stdin_fd, False)
            poller.register(stdin_fd, select.POLLOUT)
        else:
            stdin.close()

    client_fd = -1
    if client is not None:
        client_fd = client.fileno()
        poller.register(client_fd, select.POLLRDHUP)

    def read_from(fd: int) -> None:
        data = _read_some(fd)
        if data:
            on_output(outputs[fd], data)
        elif data == b"":
            poller.unregister(fd)
            del outputs[fd]

    while True:
        timeout_ms = None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 and not child.exited.is_set():
                return "timeout"
            # An exit that raced the deadline is an exit: poll once more to see it.
            timeout_ms = max(left, 0) * 1000 + 1
        exited = False
        for fd, events in poller.poll(timeout_ms):
            if fd in outputs:
                read_from(fd)
            elif fd == child.exit_r:
                exited = True
            elif fd == stdin_fd and stdin is not None:
                try:
                    pending = pending[os.write(stdin_fd, pending[:CHUNK]) :]
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    pending = memoryview(b"")
                if not pending:
                    poller.unregister(stdin_fd)
                    stdin.close()
                    stdin_fd = -1
            elif fd == client_fd and events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                return "client_gone"
        if exited:
            # Drain what was written before the exit, but do not chase a child left writing.
            drain_until = time.monotonic() + 0.1
            while outputs and time.monotonic() < drain_until:
                for fd in list(outputs):
                    data = _read_some(fd)
                    if data is None:
                        del outputs[fd]
                    elif data:
                        on_output(outputs[fd], data)
                    else:
                        del outputs[fd]
            return "exited"


def close_pipes(child: Child) -> None:
    for pipe in (child.popen.stdin, child.popen.stdout, child.popen.stderr):
        if pipe is not None:
            pipe.close()


class CommandSpec:
    """A validated argv/cwd/env, shared by exec and background processes."""

    def __init__(self, body: dict[str, Any], root: str) -> None:
        argv = body.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ApiError("invalid_request", "argv must be a non-empty list of strings")
        if any("\0" in a for a in argv):
            raise ApiError("invalid_request", "argv must not contain NUL bytes")
        self.argv: list[str] = argv
        cwd = body.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise ApiError("invalid_request", "cwd must be a string or null")
        self.cwd = resolve_path(root, cwd) if cwd else root
        if not os.path.isdir(self.cwd):
            code = "not_a_directory" if os.path.exists(self.cwd) else "not_found"
            raise ApiError(code, f"cwd {self.cwd} is not an existing directory")
        env = body.get("env")
        if env is not None and not isinstance(env, dict):
            raise ApiError("invalid_request", "env must be an object of strings, or null")
        self.env = dict(os.environ)
        for key, value in (env or {}).items():
            if not key or "=" in key or "\0" in key:
                raise ApiError("invalid_request", f"env name {key!r} is not valid")
            if value is None:
                self.env.pop(key, None)
            elif isinstance(value, str) and "\0" not in value:
                self.env[key] = value
            else:
                raise ApiError("invalid_request", f"env {key} must be a string without NUL bytes, or null")
        self.marker = os.urandom(8).hex()
        self.env[EXEC_MARKER] = self.marker


def _reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise ApiError("invalid_request", f"unknown field(s): {', '.join(sorted(unknown))}")


class ExecRequest:
    FIELDS = {"argv", "cwd", "env", "stdin", "timeout", "max_output"}

    def __init__(self, body: dict[str, Any], root: str) -> None:
        _reject_unknown(body, self.FIELDS)
        self.command = CommandSpec(body, root)
        stdin = body.get("stdin")
        self.stdin: bytes | None = None
        if stdin is not None:
            if not isinstance(stdin, str):
                raise ApiError("invalid_request", "stdin must be base64 text or null")
            try:
                self.stdin = base64.b64decode(stdin, validate=True)
            except binascii.Error:
                raise ApiError("invalid_request", "stdin is not valid base64") from None
        timeout = body.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise ApiError("invalid_request", "timeout must be a positive number of seconds, or null")
        self.timeout: float | None = timeout
        max_output = body.get("max_output", DEFAULT_MAX_OUTPUT)
        if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 0:
            raise ApiError("invalid_request", "max_output must be a non-negative integer")
        self.max_output: int = max_output


def _program_missing(argv0: str, env: dict[str, str], exc: OSError) -> bool:
    """Whether a failed spawn means "no such program", as a shell would see it.

    A search through PATH that meets an unreadable directory fails with EACCES even
    when the program is simply nowhere; a shell calls that "not found", and so do we.
    """
    if isinstance(exc, FileNotFoundError):
        return True
    return "/" not in argv0 and shutil.which(argv0, path=env.get("PATH", os.defpath)) is None


def _unrunnable(argv0: str, env: dict[str, str], exc: OSError) -> tuple[int, bytes]:
    """The exit code and message a shell would give for a program it cannot run."""
    if _program_missing(argv0, env, exc):
        return 127, f"sandboxd: {argv0}: command not found\n".encode()
    return 126, f"sandboxd: {argv0}: {exc.strerror or exc}\n".encode()


def run_command(
    reaper: Reaper,
    req: ExecRequest,
    on_output: Callable[[str, bytes], None],
    client: socket.socket | None,
) -> dict[str, Any]:
    """Run one command to its end (or its deadline); the result without its output."""
    started = time.monotonic()
    spec = req.command
    try:
        child = reaper.spawn(spec.argv, spec.cwd, spec.env, spec.marker, stdin=req.stdin is not None)
    except OSError as exc:
        code, message = _unrunnable(spec.argv[0], spec.env, exc)
        on_output("stderr", message)
        return _result(code, None, False, started)
    outcome = "failed"
    try:
        deadline = started + req.timeout if req.timeout is not None else None
        outcome = pump(child, on_output, stdin_data=req.stdin, deadline=deadline, client=client)
    except ClientGone:
        outcome = "client_gone"
    finally:
        if outcome != "exited":
            child.kill_tree()
            if outcome == "timeout" and child.exited.wait(10):
                # The killed command may have written a last word; keep it.
                pump(child, on_output)
        close_pipes(child)
        child.close_exit_pipe()
    if outcome == "client_gone":
        raise ClientGone()
    return _result(child.exit_code, child.signal, outcome == "timeout", started)


def _result(exit_code: int | None, sig: int | None, timed_out: bool, started: float) -> dict[str, Any]:
    return {
        "exit_code": exit_code,
        "signal": sig,
        "timed_out": timed_out,
        "duration_ms": round((time.monotonic() - started) * 1000, 3),
    }


# --- background processes ----------------------------------------------------------------------

_SIGNALS = {s.name[3:]: s for s in signal.Signals if s.name.startswith("SIG") and not s.name.startswith("SIG_")}


def parse_signal(value: Any) -> int:
    if isinstance(value, bool):
        raise ApiError("invalid_request", "signal must be a name like TERM or a number")
    if isinstance(value, int):
        if value in {s.value for s in signal.Signals}:
            return value
        raise ApiError("invalid_request", f"signal {value} does not exist")
    if isinstance(value, str):
        name = value.upper().removeprefix("SIG")
        if name in _SIGNALS:
            return int(_SIGNALS[name])
    raise ApiError("invalid_request", f"signal {value!r} is not known; use TERM, KILL, INT, HUP, ... or a number")


class ManagedProcess:
    """A command started in the background: it outlives the request that started it."""

    def __init__(self, child: Child, spec: CommandSpec, name: str | None) -> None:
        self.id = "p-" + spec.marker[:12]
        self.child = child
        self.spec = spec
        self.name = name
        self.started_at = time.time()
        self.stdout = OutputRing()
        self.stderr = OutputRing()
        # Set once the command has exited and its output up to then is in the rings.
        self.finished = threading.Event()
        self._stdin_lock = threading.Lock()
        threading.Thread(target=self._follow, name=f"follow-{self.id}", daemon=True).start()

    def _follow(self) -> None:
        rings = {"stdout": self.stdout, "stderr": self.stderr}

        def keep(stream: str, data: bytes) -> None:
            rings[stream].append(data)

        pump(self.child, keep)
        self.finished.set()
        # Children left behind may still write to the pipes; keep collecting until they close.
        poller = select.poll()
        names: dict[int, str] = {}
        for stream, pipe in (("stdout", self.child.popen.stdout), ("stderr", self.child.popen.stderr)):
            if pipe is not None and not pipe.closed:
                names[pipe.fileno()] = stream
                poller.register(pipe.fileno(), select.POLLIN)
        while names:
            for fd, _ in poller.poll():
                data = _read_some(fd)
                if data:
                    keep(names[fd], data)
                elif data == b"":
                    poller.unregister(fd)
                    del names[fd]
        for pipe in (self.child.popen.stdout, self.child.popen.stderr):
            if pipe is not None:
                pipe.close()
        self.child.close_exit_pipe()

    @property
    def state(self) -> str:
        return "exited" if self.finished.is_set() else "running"

    def describe(self) -> dict[str, Any]:
        finished = self.finished.is_set()
        return {
            "id": self.id,
            "pid": self.child.pid,
            "name": self.name,
            "argv": self.spec.argv,
            "cwd": self.spec.cwd,
            "state": "exited" if finished else "running",
            "exit_code": self.child.exit_code if finished else None,
            "signal": self.child.signal if finished else None,
            "started_at": self.started_at,
            "ended_at": self.child.ended_at if finished else None,
        }

    def output(self, stdout_offset: int, stderr_offset: int) -> dict[str, Any]:
        # Read the state first: if it says exited, the rings already hold everything up to the exit.
        finished = self.finished.is_set()
        out, out_next, out_dropped = self.stdout.read(stdout_offset)
        err, err_next, err_dropped = self.stderr.read(stderr_offset)
        return {
            "stdout": base64.b64encode(out).decode("ascii"),
            "stderr": base64.b64encode(err).decode("ascii"),
            "stdout_offset": out_next,
            "stderr_offset": err_next,
            "stdout_dropped": out_dropped,
            "stderr_dropped": err_dropped,
            "state": "exited" if finished else "running",
            "exit_code": self.child.exit_code if finished else None,
        }

    def write_stdin(self, data: bytes, eof: bool) -> int:
        with self._stdin_lock:
            pipe = self.child.popen.stdin
            if pipe is None or pipe.closed:
                raise ApiError("conflict", f"stdin of process {self.id} is closed")
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            writable = select.poll()  # not select(): it cannot wait on fds above 1023
            writable.register(fd, select.POLLOUT)
            view = memoryview(data)
            deadline = time.monotonic() + STDIN_WRITE_TIMEOUT
            try:
                while view:
                    try:
                        view = view[os.write(fd, view[:CHUNK]) :]
                    except BlockingIOError:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise ApiError(
                                "conflict",
                                f"process {self.id} has not read its stdin for {STDIN_WRITE_TIMEOUT:g}s; "
                                f"{len(data) - len(view)} of {len(data)} bytes were written",
                            ) from None
                        writable.poll(left * 1000)
            except (BrokenPipeError, ConnectionResetError):
                pipe.close()
                raise ApiError("conflict", f"process {self.id} closed its stdin") from None
            if eof:
                pipe.close()
            return len(data)

    def send_signal(self, signum: int) -> None:
        if signum == signal.SIGKILL:
            # Also after the main process exited: what it left behind goes too.
            self.child.kill_tree()
            return
        if self.finished.is_set():
            raise ApiError("conflict", f"process {self.id} has already exited")
        try:
            os.killpg(self.child.pid, signum)
        except ProcessLookupError:
            raise ApiError("conflict", f"process {self.id} has already exited") from None


class ProcessTable:
    def __init__(self, reaper: Reaper, root: str) -> None:
        self._reaper = reaper
        self._root = root
        self._lock = threading.Lock()
        self._procs: dict[str, ManagedProcess] = {}

    def start(self, body: dict[str, Any]) -> ManagedProcess:
        _reject_unknown(body, {"argv", "cwd", "env", "name"})
        spec = CommandSpec(body, self._root)
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise ApiError("invalid_request", "name must be a string or null")
        try:
            child = self._reaper.spawn(spec.argv, spec.cwd, spec.env, spec.marker, stdin=True)
        except OSError as exc:
            if _program_missing(spec.argv[0], spec.env, exc):
                raise ApiError("not_found", f"command not found: {spec.argv[0]}") from None
            raise ApiError("permission_denied", f"cannot run {spec.argv[0]}: {exc.strerror or exc}") from None
        proc = ManagedProcess(child, spec, name)
        with self._lock:
            self._procs[proc.id] = proc
            self._evict_finished()
        return proc

    def _evict_finished(self) -> None:
        finished = [p for p in self._procs.values() if p.finished.is_set()]
        for proc in sorted(finished, key=lambda p: p.started_at)[: max(len(finished) - MAX_FINISHED_PROCESSES, 0)]:
            del self._procs[proc.id]

    def get(self, process_id: str) -> ManagedProcess:
        with self._lock:
            proc = self._procs.get(process_id)
        if proc is None:
            raise ApiError("not_found", f"no process {process_id} (it may have been forgotten)")
        return proc

    def all(self) -> list[ManagedProcess]:
        with self._lock:
            return sorted(self._procs.values(), key=lambda p: p.started_at)

    def forget(self, process_id: str) -> None:
        proc = self.get(process_id)
        if not proc.finished.is_set():
            raise ApiError("conflict", f"process {process_id} is still running; kill it first")
        with self._lock:
            self._procs.pop(process_id, None)


# --- files -------------------------------------------------------------------------------------


def resolve_path(root: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise ApiError("invalid_request", "path is required")
    if "\0" in raw:
        raise ApiError("invalid_request", "path must not contain NUL bytes")
    return os.path.normpath(os.path.join(root, raw))


def parse_mode(raw: Any, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = raw if isinstance(raw, int) and not isinstance(raw, bool) else int(str(raw), 8)
    except ValueError:
        raise ApiError("invalid_request", f"mode {raw!r} is not octal like 0644") from None
    if not 0 <= value <= 0o7777:
        raise ApiError("invalid_request", f"mode {raw!r} is out of range 0000-7777")
    return value


def describe_path(path: str, st: os.stat_result | None = None) -> dict[str, Any]:
    if st is None:
        st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        kind = "file"
    elif stat.S_ISDIR(st.st_mode):
        kind = "dir"
    elif stat.S_ISLNK(st.st_mode):
        kind = "symlink"
    else:
        kind = "other"
    info: dict[str, Any] = {
        "name": os.path.basename(path) or path,
        "path": path,
        "type": kind,
        "size": st.st_size,
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "mtime": st.st_mtime,
    }
    if kind == "symlink":
        try:
            info["target"] = os.readlink(path)
        except OSError:
            info["target"] = None
    return info


def list_directory(path: str) -> list[dict[str, Any]]:
    entries = []
    with os.scandir(path) as it:
        for entry in it:
            try:
                entries.append(describe_path(entry.path, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue  # gone between listing and looking
    entries.sort(key=lambda e: e["name"])
    return entries


def open_regular_file(path: str) -> int:
    """An fd to read ``path``, refusing directories and things that never end (fifos, devices)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ApiError("is_a_directory", f"{path} is a directory")
        raise ApiError("invalid_request", f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def write_atomically(path: str, body: Any, mode: int, parents: bool) -> None:
    """Stream ``body`` into a temp file beside ``path``, then rename: readers see old or new, never half."""
    directory = os.path.dirname(path)
    if parents:
        try:
            os.makedirs(directory, exist_ok=True)
        except FileExistsError:
            raise ApiError("not_a_directory", f"{directory} exists and is not a directory") from None
    elif not os.path.isdir(directory):
        code = "not_a_directory" if os.path.exists(directory) else "not_found"
        raise ApiError(code, f"{directory} is not an existing directory (pass parents=1 to create it)")
    if os.path.isdir(path):
        raise ApiError("is_a_directory", f"{path} is a directory")
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.urandom(4).hex()}.part")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        # Name the file the caller asked for, not our temporary beside it.
        raise error_from_os(exc, path) from None
    try:
        with open(fd, "wb", closefd=True) as f:
            while True:
                chunk = body.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
        os.rename(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def delete_path(path: str, recursive: bool) -> None:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
    elif recursive:
        shutil.rmtree(path)
    else:
        os.rmdir(path)


def make_directory(path: str, parents: bool, mode: int) -> None:
    if parents:
        if os.path.isdir(path):
            return
        os.makedirs(path, mode=mode, exist_ok=True)
    else:
        os.mkdir(path, mode)
    os.chmod(path, mode)  # mkdir's mode passes through the umask


def move_path(src: str, dst: str, overwrite: bool) -> None:
    os.lstat(src)  # a missing source is "not found", whatever the destination
    if not overwrite and os.path.lexists(dst):
        raise ApiError("already_exists", f"{dst} exists (pass overwrite=true to replace it)")
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(src, dst)


def _within(base: str, path: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def check_member(member: tarfile.TarInfo, dest: str) -> None:
    """Refuse an archive member that would write outside ``dest`` or create a device."""
    from pathlib import PurePosixPath

    base = os.path.realpath(dest)
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts:
        raise ApiError("invalid_request", f"archive member {name!r} would land outside {dest}")
    target = os.path.realpath(os.path.join(base, name))
    if not _within(base, target):
        raise ApiError("invalid_request", f"archive member {name!r} would land outside {dest} (through a link)")
    if member.issym():
        if member.linkname.startswith("/"):
            raise ApiError("invalid_request", f"archive member {name!r} links to an absolute path")
        pointee = os.path.realpath(os.path.join(os.path.dirname(target), member.linkname))
        if not _within(base, pointee):
            raise ApiError("invalid_request", f"archive member {name!r} links outside {dest}")
    elif member.islnk():
        pointee = os.path.realpath(os.path.join(base, member.linkname))
        if not _within(base, pointee):
            raise ApiError("invalid_request", f"archive member {name!r} links outside {dest}")
    elif not (member.isreg() or member.isdir()):
        raise ApiError("invalid_request", f"archive member {name!r} is a device or fifo; only files and links")


def extract_archive(body: Any, dest: str) -> int:
    import tarfile  # only archive calls need it; importing it lazily keeps the start fast

    os.makedirs(dest, exist_ok=True)
    if not os.path.isdir(dest):
        raise ApiError("not_a_directory", f"{dest} is not a directory")
    # The standard library's own "data" filter (3.12, and 3.11.4+) adds its checks to ours.
    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    refused: Any = getattr(tarfile, "FilterError", ())
    count = 0
    try:
        with tarfile.open(fileobj=body, mode="r|*") as tar:
            for member in tar:
                check_member(member, dest)
                tar.extract(member, dest, **extra)
                count += 1
    except refused as exc:
        raise ApiError("invalid_request", f"archive member refused: {exc}") from None
    except tarfile.TarError as exc:
        raise ApiError("invalid_request", f"not a valid tar archive: {exc}") from None
    return count


class CoalescingWriter:
    """Collects small writes (tarfile writes 10 KiB records) into CHUNK-sized ones."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self._buf += data
        if len(self._buf) >= CHUNK:
            self._sink(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def flush(self) -> None:
        if self._buf:
            self._sink(bytes(self._buf))
            self._buf.clear()


def _add_tree(tar: tarfile.TarFile, directory: str, prefix: str) -> None:
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        arcname = prefix + entry.name
        try:
            info = tar.gettarinfo(entry.path, arcname=arcname)
        except FileNotFoundError:
            continue  # vanished while we walked
        if info is None:
            continue  # sockets cannot go in a tar
        if info.isreg():
            try:
                with open(entry.path, "rb") as f:
                    tar.addfile(info, f)
            except FileNotFoundError:
                continue
        else:
            tar.addfile(info)
        if info.isdir():
            _add_tree(tar, entry.path, arcname + "/")


def write_archive(directory: str, out: CoalescingWriter) -> None:
    import tarfile

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        _add_tree(tar, directory, "")
    out.flush()


# --- HTTP plumbing -----------------------------------------------------------------------------


class BodyReader:
    """A request body, whether sized or chunked, read incrementally; .read(n) like a file."""

    def __init__(self, rfile: Any, length: int | None) -> None:
        self._rfile = rfile
        self._chunked = length is None
        self._left = 0 if length is None else length
        self.done = length == 0

    def read(self, n: int = -1) -> bytes:
        if self.done:
            return b""
        if self._chunked and self._left == 0:
            self._next_chunk()
            if self.done:
                return b""
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = self._rfile.read(want)
        if not data:
            raise ClientGone()
        self._left -= len(data)
        if self._left == 0:
            if self._chunked:
                self._rfile.readline(16)  # the CRLF closing the chunk
            else:
                self.done = True
        return data

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024)
        if not line:
            raise ClientGone()
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ApiError("invalid_request", "malformed chunked body") from None
        if size == 0:
            while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self.done = True
        self._left = size

    def read_all(self, limit: int) -> bytes:
        parts = []
        total = 0
        while True:
            chunk = self.read(CHUNK)
            if not chunk:
                return b"".join(parts)
            total += len(chunk)
            if total > limit:
                raise ApiError("payload_too_large", f"request body is over {limit} bytes")
            parts.append(chunk)

    def drain(self, limit: int) -> bool:
        """Read and discard the rest if it is small; False if the connection must close instead."""
        total = 0
        while not self.done:
            if self._left > limit - total and not self._chunked:
                return False
            chunk = self.read(CHUNK)
            total += len(chunk)
            if total > limit:
                return False
        return True


_REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 413: "Payload Too Large",
            422: "Unprocessable Entity", 500: "Internal Server Error"}


# --- terminals ----------------------------------------------------------------------------------


def _take_controlling_terminal() -> None:
    """In the child, before exec: make the pty (already on fd 0) our controlling terminal, so
    Ctrl-C typed into it reaches the foreground job as SIGINT, as in any terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _window(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or not 1 <= value <= 1000:
        raise ApiError("invalid_request", f"{name} must be an integer from 1 to 1000")
    return value


def pty_frame(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack(">I", len(payload)) + payload


class PtyRequest:
    def __init__(self, body: dict[str, Any], root: str) -> None:
        _reject_unknown(body, {"argv", "cwd", "env", "rows", "cols", "term"})
        if body.get("argv") is None:
            body = {**body, "argv": ["bash", "-l"] if shutil.which("bash") else ["sh", "-l"]}
        self.command = CommandSpec(body, root)
        self.rows = _window(body.get("rows"), "rows", 24)
        self.cols = _window(body.get("cols"), "cols", 80)
        term = body.get("term") or "xterm-256color"
        if not isinstance(term, str) or not term.replace("-", "").isalnum():
            raise ApiError("invalid_request", "term must be a terminal name such as xterm-256color")
        self.command.env["TERM"] = term


def serve_terminal(child: Child, master: int, rfile: Any, wfile: Any) -> None:
    """Shuttle bytes between the client and the pty until the shell ends or the client leaves."""
    send_lock = threading.Lock()

    def send(kind: bytes, payload: bytes) -> None:
        with send_lock:
            wfile.write(pty_frame(kind, payload))
            wfile.flush()

    def from_client() -> None:
        try:
            while True:
                head = rfile.read(5)
                if len(head) < 5:
                    break
                kind, size = head[:1], struct.unpack(">I", head[1:])[0]
                payload = rfile.read(size) if size else b""
                if len(payload) < size or kind == b"k":
                    break
                if kind == b"d":
                    view = memoryview(payload)
                    while view:
                        view = view[os.write(master, view) :]
                elif kind == b"r" and size == 4:
                    rows, cols = struct.unpack(">HH", payload)
                    if rows and cols:
                        set_window_size(master, rows, cols)
        except (OSError, ValueError):
            pass
        child.kill_tree()  # the client hung up: nobody is left to type into this shell

    threading.Thread(target=from_client, name="pty-input", daemon=True).start()
    try:
        while True:
            ready, _, _ = select.select([master, child.exit_r], [], [], 1.0)
            if master in ready:
                try:
                    data = os.read(master, CHUNK)
                except OSError:  # EIO: every process holding the terminal is gone
                    data = b""
                if not data:
                    break
                send(b"d", data)
            elif child.exit_r in ready:
                # The shell ended; pass on what it wrote last, then stop.
                while select.select([master], [], [], 0.05)[0]:
                    try:
                        data = os.read(master, CHUNK)
                    except OSError:
                        data = b""
                    if not data:
                        break
                    send(b"d", data)
                break
        child.kill_tree()
        child.exited.wait(10)
        send(b"x", json.dumps({"exit_code": child.exit_code, "signal": child.signal}).encode())
    except OSError:
        child.kill_tree()


class Supervisor:
    """What the request handlers share: the reaper, the process table and the root directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.reaper = Reaper()
        self.processes = ProcessTable(self.reaper, self.root)
        self.subreaper = False

    def start(self) -> None:
        self.subreaper = become_subreaper()
        self.reaper.start()

    def stop(self) -> None:
        """Take every command down with us: nothing we started should outlive the supervisor."""
        for child in self.reaper.running():
            child.kill_tree()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sandboxd-supervisor/1"
    sys_version = ""
    server: Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the errors that matter

    # dispatch ----------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query, keep_blank_values=True, errors="surrogateescape")
        self.app = self.server.app
        self.started = False
        self.body = self._body_reader()
        try:
            if self.body is None:
                raise ApiError("invalid_request", "Content-Length or chunked Transfer-Encoding required")
            route = _ROUTES.get((method, url.path))
            if route is not None:
                route(self)
            elif url.path.startswith("/processes/"):
                self._process_route(method, url.path.removeprefix("/processes/"))
            else:
                raise ApiError("not_found", f"no route {method} {url.path}")
        except ClientGone:
            self.close_connection = True
            return
        except ApiError as exc:
            self._fail(exc)
        except OSError as exc:
            self._fail(error_from_os(exc))
        except Exception as exc:
            log(f"{method} {url.path} failed: {type(exc).__name__}\n{traceback.format_exc(limit=8)}")
            self._fail(ApiError("internal", f"the supervisor failed: {type(exc).__name__}"))
        self._discard_body()

    def _discard_body(self) -> None:
        """Whatever the handler left unread must go, or it would be parsed as the next request."""
        if self.body is None or self.body.done or self.close_connection:
            return
        try:
            if not self.body.drain(DRAIN_LIMIT):
                self.close_connection = True
        except (ClientGone, ApiError, OSError):
            self.close_connection = True

    def _body_reader(self) -> BodyReader | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return BodyReader(self.rfile, None)
        length = self.headers.get("Content-Length")
        if length is None:
            return BodyReader(self.rfile, 0)
        try:
            size = int(length)
        except ValueError:
            return None
        return BodyReader(self.rfile, size) if size >= 0 else None

    def _process_route(self, method: str, rest: str) -> None:
        process_id, _, action = rest.partition("/")
        handlers = {
            ("GET", ""): self.process_get,
            ("DELETE", ""): self.process_forget,
            ("GET", "output"): self.process_output,
            ("POST", "stdin"): self.process_stdin,
            ("POST", "signal"): self.process_signal,
            ("POST", "wait"): self.process_wait,
        }
        handler = handlers.get((method, action))
        if handler is None:
            raise ApiError("not_found", f"no route {method} /processes/{rest}")
        handler(self.app.processes.get(process_id))

    # request and response helpers --------------------------------------------------------------

    def _fail(self, exc: ApiError) -> None:
        if self.started:
            self.close_connection = True  # a stream cut short is the only honest signal left
            return
        if exc.status >= 500:
            log(f"answering {exc.code}: {exc.message}")
        self._discard_body()
        try:
            self._send_json({"error": exc.code, "message": exc.message}, exc.status)
        except OSError:
            self.close_connection = True

    def _json(self) -> dict[str, Any]:
        assert self.body is not None
        raw = self.body.read_all(MAX_JSON_BODY)
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError("invalid_request", "body is not valid JSON") from None
        if not isinstance(value, dict):
            raise ApiError("invalid_request", "body must be a JSON object")
        return value

    def _param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def _flag(self, name: str, default: bool = False) -> bool:
        value = self._param(name)
        if value is None or value == "":
            return default
        return value.lower() in ("1", "true", "yes")

    def _int_param(self, name: str, default: int) -> int:
        value = self._param(name)
        try:
            return default if value in (None, "") else int(value)  # type: ignore[arg-type]
        except ValueError:
            raise ApiError("invalid_request", f"{name} must be an integer") from None

    def _path(self, raw: Any | None = None) -> str:
        return resolve_path(self.app.root, self._param("path") if raw is None else raw)

    def _send_json(self, value: Any, status: int = 200) -> None:
        body = json.dumps(value, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        )
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode() + b"\r\n" + body)

    def _start_chunked(self, content_type: str) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
        self.wfile.write(head.encode())
        self.started = True

    def _send_chunk(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
        except OSError:
            raise ClientGone() from None

    def _end_chunked(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            raise ClientGone() from None

    # health and exec -----------------------------------------------------------------------------

    def health(self) -> None:
        self._send_json({"ok": True, "pid": os.getpid(), "version": VERSION, "subreaper": self.app.subreaper})

    def exec(self) -> None:
        req = ExecRequest(self._json(), self.app.root)
        captures = {"stdout": Capture(req.max_output), "stderr": Capture(req.max_output)}

        def keep(stream: str, data: bytes) -> None:
            captures[stream].add(data)

        result = run_command(self.app.reaper, req, keep, self.connection)
        result["stdout"] = base64.b64encode(captures["stdout"].data).decode("ascii")
        result["stderr"] = base64.b64encode(captures["stderr"].data).decode("ascii")
        result["stdout_truncated"] = captures["stdout"].truncated
        result["stderr_truncated"] = captures["stderr"].truncated
        self._send_json(result)

    def exec_stream(self) -> None:
        req = ExecRequest(self._json(), self.app.root)
        captures = {"stdout": Capture(req.max_output), "stderr": Capture(req.max_output)}
        self._start_chunked("application/x-ndjson")

        def forward(stream: str, data: bytes) -> None:
            kept = captures[stream].add(data)
            if kept:
                line = {"stream": stream, "data": base64.b64encode(kept).decode("ascii")}
                self._send_chunk(json.dumps(line, separators=(",", ":")).encode() + b"\n")

        result = run_command(self.app.reaper, req, forward, self.connection)
        result["stdout_truncated"] = captures["stdout"].truncated
        result["stderr_truncated"] = captures["stderr"].truncated
        self._send_chunk(json.dumps({"exit": result}, separators=(",", ":")).encode() + b"\n")
        self._end_chunked()

    def pty(self) -> None:
        req = PtyRequest(self._json(), self.app.root)
        spec = req.command
        master, slave = os.openpty()
        try:
            set_window_size(slave, req.rows, req.cols)
            child = self.app.reaper.spawn(spec.argv, spec.cwd, spec.env, spec.marker, stdin=False, tty=slave)
        except OSError as exc:
            os.close(master)
            code, message = _unrunnable(spec.argv[0], spec.env, exc)
            raise ApiError("not_found" if code == 127 else "invalid_request", message.decode().strip()) from None
        finally:
            os.close(slave)
        self.started = True
        self.close_connection = True
        try:
            self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: sandboxd-pty\r\nConnection: Upgrade\r\n\r\n")
            self.wfile.flush()
            serve_terminal(child, master, self.rfile, self.wfile)
        finally:
            os.close(master)
            child.close_exit_pipe()

    # background processes ------------------------------------------------------------------------

    def process_start(self) -> None:
        proc = self.app.processes.start(self._json())
        self._send_json(proc.describe())

    def process_list(self) -> None:
        self._send_json({"processes": [p.describe() for p in self.app.processes.all()]})

    def process_get(self, proc: ManagedProcess) -> None:
        self._send_json(proc.describe())

    def process_forget(self, proc: ManagedProcess) -> None:
        self.app.processes.forget(proc.id)
        self._send_json({"ok": True})

    def process_output(self, proc: ManagedProcess) -> None:
        self._send_json(proc.output(self._int_param("stdout_offset", 0), self._int_param("stderr_offset", 0)))

    def process_stdin(self, proc: ManagedProcess) -> None:
        assert self.body is not None
        data = self.body.read_all(MAX_JSON_BODY)
        self._send_json({"written": proc.write_stdin(data, self._flag("eof"))})

    def process_signal(self, proc: ManagedProcess) -> None:
        body = self._json()
        _reject_unknown(body, {"signal"})
        proc.send_signal(parse_signal(body.get("signal")))
        self._send_json(proc.describe())

    def process_wait(self, proc: ManagedProcess) -> None:
        raw = self._param("timeout", "30")
        try:
            timeout = float(raw)  # type: ignore[arg-type]
        except ValueError:
            raise ApiError("invalid_request", "timeout must be a number of seconds") from None
        if not 0 <= timeout <= 3600:
            raise ApiError("invalid_request", "timeout must be between 0 and 3600 seconds")
        proc.finished.wait(timeout)
        self._send_json(proc.describe())

    # files -----------------------------------------------------------------------------------------

    def file_read(self) -> None:
        path = self._path()
        fd = open_regular_file(path)
        with open(fd, "rb", buffering=0, closefd=True) as f:
            self._start_chunked("application/octet-stream")
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                self._send_chunk(chunk)
        self._end_chunked()

    def file_write(self) -> None:
        path = self._path()
        mode = parse_mode(self._param("mode"), 0o644)
        write_atomically(path, self.body, mode, self._flag("parents", True))
        self._send_json(describe_path(path))

    def file_stat(self) -> None:
        self._send_json(describe_path(self._path()))

    def file_list(self) -> None:
        self._send_json({"entries": list_directory(self._path())})

    def file_mkdir(self) -> None:
        body = self._json()
        _reject_unknown(body, {"path", "parents", "mode"})
        path = self._path(body.get("path"))
        make_directory(path, bool(body.get("parents", False)), parse_mode(body.get("mode"), 0o755))
        self._send_json(describe_path(path))

    def file_delete(self) -> None:
        delete_path(self._path(), self._flag("recursive"))
        self._send_json({"ok": True})

    def file_move(self) -> None:
        body = self._json()
        _reject_unknown(body, {"src", "dst", "overwrite"})
        src, dst = self._path(body.get("src")), self._path(body.get("dst"))
        move_path(src, dst, bool(body.get("overwrite", False)))
        self._send_json(describe_path(dst))

    def archive_download(self) -> None:
        path = self._path()
        if not os.path.isdir(path):
            os.stat(path)  # not found, or permission denied, as the kernel says
            raise ApiError("not_a_directory", f"{path} is not a directory")
        os.listdir(path)  # fail before the first byte if we may not read it
        self._start_chunked("application/x-tar")
        write_archive(path, CoalescingWriter(self._send_chunk))
        self._end_chunked()

    def archive_upload(self) -> None:
        count = extract_archive(self.body, self._path())
        self._send_json({"extracted": count})


_ROUTES: dict[tuple[str, str], Callable[[Handler], None]] = {
    ("GET", "/health"): Handler.health,
    ("POST", "/exec"): Handler.exec,
    ("POST", "/exec/stream"): Handler.exec_stream,
    ("POST", "/pty"): Handler.pty,
    ("POST", "/processes"): Handler.process_start,
    ("GET", "/processes"): Handler.process_list,
    ("GET", "/files/content"): Handler.file_read,
    ("PUT", "/files/content"): Handler.file_write,
    ("GET", "/files/stat"): Handler.file_stat,
    ("GET", "/files/list"): Handler.file_list,
    ("POST", "/files/mkdir"): Handler.file_mkdir,
    ("DELETE", "/files"): Handler.file_delete,
    ("POST", "/files/move"): Handler.file_move,
    ("GET", "/files/archive"): Handler.archive_download,
    ("PUT", "/files/archive"): Handler.archive_upload,
}


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, socket_path: str, app: Supervisor) -> None:
        self.app = app
        if os.path.exists(socket_path) or os.path.islink(socket_path):
            os.unlink(socket_path)  # left by a previous run of this sandbox
        super().__init__(socket_path, Handler)
        # The daemon on the host may run as another uid; the directory is what guards access.
        os.chmod(socket_path, 0o666)


def parse_arguments(argv: list[str]) -> dict[str, str]:
    """``--socket PATH [--root-cwd DIR]``; by hand, since argparse alone costs a new sandbox ~5 ms."""
    options = {"--socket": "", "--root-cwd": "/workspace"}
    items = iter(argv)
    for item in items:
        name, sep, value = item.partition("=")
        if name not in options:
            raise SystemExit(f"usage: supervisor.py --socket PATH [--root-cwd DIR] (unknown argument {item!r})")
        options[name] = value if sep else next(items, "")
    if not options["--socket"]:
        raise SystemExit("usage: supervisor.py --socket PATH [--root-cwd DIR] (--socket is required)")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(sys.argv[1:] if argv is None else argv)
    socket_path, root = options["--socket"], options["--root-cwd"]

    app = Supervisor(root)
    app.start()
    os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
    server = Server(socket_path, app)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"listening on {socket_path} (pid {os.getpid()}, root {app.root}, subreaper {app.subreaper})")
    try:
        server.serve_forever(poll_interval=1.0)
    except SystemExit:
        pass
    finally:
        app.stop()
        server.server_close()
        try:
            os.unlink(socket_path)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
