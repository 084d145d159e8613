"""Running commands in a sandbox: one-shot, streamed, and in the background.

All of it goes through the sandbox's supervisor, which can kill a whole process
tree on timeout and answers in a few milliseconds, where the Docker exec API can do
neither. Each call is audited with a summary of what ran, never its stdin or output.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Any

from sandboxd.config import Settings
from sandboxd.errors import InvalidRequest, SandboxUnavailable
from sandboxd.models import ExecRequest, StartProcess
from sandboxd.runtime.agent_types import ExecChunk, ExecResult
from sandboxd.runtime.base import SOCKET_NAME
from sandboxd.runtime.pty import PtyChannel, open_pty
from sandboxd.service.audit import AuditLog
from sandboxd.service.sandboxes import SandboxService
from sandboxd.service.tenants import Principal

_SANDBOX_USERS = {None, "", "sandbox", "1000", "1000:1000"}


def _argv_summary(argv: list[str]) -> str:
    text = " ".join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


class ExecService:
    def __init__(self, settings: Settings, sandboxes: SandboxService, audit: AuditLog) -> None:
        self._settings = settings
        self._sandboxes = sandboxes
        self._audit = audit

    def _options(self, req: ExecRequest) -> dict[str, Any]:
        s = self._settings
        if req.user not in _SANDBOX_USERS:
            raise InvalidRequest(
                f"user {req.user!r} is not available: commands run as the sandbox user (uid 1000), "
                "which has no capabilities by design"
            )
        timeout = req.timeout_s if req.timeout_s is not None else s.exec_default_timeout_s
        if timeout > s.exec_max_timeout_s:
            raise InvalidRequest(f"timeout_s={timeout:g} is over this server's limit of {s.exec_max_timeout_s:g}")
        max_output = req.max_output_bytes or s.exec_max_output_bytes
        if max_output > s.exec_output_cap_bytes:
            raise InvalidRequest(f"max_output_bytes={max_output} is over this server's limit of {s.exec_output_cap_bytes}")
        stdin: bytes | None = None
        if req.stdin is not None:
            stdin = req.stdin.encode()
        elif req.stdin_b64 is not None:
            try:
                stdin = base64.b64decode(req.stdin_b64, validate=True)
            except binascii.Error:
                raise InvalidRequest("stdin_b64 is not valid base64") from None
        return {
            "cwd": req.cwd,
            "env": req.env or None,
            "stdin": stdin,
            "timeout": timeout,
            "max_output": max_output,
        }

    async def run(self, principal: Principal, sandbox_id: str, req: ExecRequest) -> ExecResult:
        argv = req.to_argv()
        options = self._options(req)
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        summary = {"argv": _argv_summary(argv), "cwd": req.cwd, "timeout_s": options["timeout"]}
        try:
            result = await agent.exec(argv, **options)
        except SandboxUnavailable:
            error = await self._sandboxes.report_unavailable(record)
            self._audit.record(principal, "exec", sandbox_id=record.id, args=summary, result="error", error=error.message)
            raise error from None
        except Exception as exc:
            self._audit.record(principal, "exec", sandbox_id=record.id, args=summary, result="error", error=str(exc))
            raise
        outcome = "timeout" if result.timed_out else f"exit {result.exit_code}"
        self._audit.record(principal, "exec", sandbox_id=record.id, args=summary, result=outcome)
        return result

    async def stream(
        self, principal: Principal, sandbox_id: str, req: ExecRequest
    ) -> AsyncIterator[ExecChunk | ExecResult]:
        """Validate and wake before the first byte, so errors are still proper HTTP answers."""
        argv = req.to_argv()
        options = self._options(req)
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        summary = {"argv": _argv_summary(argv), "cwd": req.cwd, "timeout_s": options["timeout"], "stream": True}
        self._audit.record(principal, "exec", sandbox_id=record.id, args=summary, result="started")
        return agent.exec_stream(argv, **options)

    # --- interactive terminals ---------------------------------------------------------------

    async def open_terminal(
        self,
        principal: Principal,
        sandbox_id: str,
        *,
        command: str | None = None,
        rows: int = 24,
        cols: int = 80,
        term: str = "xterm-256color",
    ) -> PtyChannel:
        if not (1 <= rows <= 1000 and 1 <= cols <= 1000):
            raise InvalidRequest("rows and cols must be between 1 and 1000")
        record, _ = await self._sandboxes.agent_for(principal, sandbox_id)
        request: dict[str, Any] = {"rows": rows, "cols": cols, "term": term}
        if command:
            request["argv"] = ["bash", "-lc", command]
        channel = await open_pty(self._settings.socket_root / record.id / SOCKET_NAME, request)
        self._audit.record(principal, "terminal.open", sandbox_id=record.id, args={"command": command or "login shell"})
        return channel

    # --- background processes ----------------------------------------------------------------

    async def start_process(self, principal: Principal, sandbox_id: str, req: StartProcess) -> Any:
        argv = req.to_argv()
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        info = await agent.start_process(argv, cwd=req.cwd, env=req.env or None, name=req.name)
        self._audit.record(
            principal, "process.start", sandbox_id=record.id, args={"argv": _argv_summary(argv), "name": req.name}
        )
        return info

    async def list_processes(self, principal: Principal, sandbox_id: str) -> Any:
        _, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        return await agent.list_processes()

    async def get_process(self, principal: Principal, sandbox_id: str, process_id: str) -> Any:
        _, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        return await agent.get_process(process_id)

    async def read_output(
        self, principal: Principal, sandbox_id: str, process_id: str, stdout_offset: int, stderr_offset: int
    ) -> Any:
        _, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        return await agent.read_output(process_id, stdout_offset=stdout_offset, stderr_offset=stderr_offset)

    async def write_stdin(self, principal: Principal, sandbox_id: str, process_id: str, data: bytes, eof: bool) -> None:
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        await agent.write_stdin(process_id, data, eof=eof)
        self._audit.record(
            principal, "process.stdin", sandbox_id=record.id, args={"process": process_id, "bytes": len(data), "eof": eof}
        )

    async def signal(self, principal: Principal, sandbox_id: str, process_id: str, sig: str | int) -> Any:
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        result = await agent.signal(process_id, sig)
        self._audit.record(principal, "process.signal", sandbox_id=record.id, args={"process": process_id, "signal": sig})
        return result

    async def wait(self, principal: Principal, sandbox_id: str, process_id: str, timeout: float) -> Any:
        if not 0 <= timeout <= 3600:
            raise InvalidRequest("timeout must be between 0 and 3600 seconds; call again to wait longer")
        _, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        return await agent.wait(process_id, timeout)

    async def forget(self, principal: Principal, sandbox_id: str, process_id: str) -> None:
        record, agent = await self._sandboxes.agent_for(principal, sandbox_id)
        await agent.forget(process_id)
        self._audit.record(principal, "process.forget", sandbox_id=record.id, args={"process": process_id})
