"""The Python SDK for sandboxd: sync and async twins of the same shape.

    from sandboxd.client import Client

    with Client() as client, client.sandboxes.create() as sbx:
        result = sbx.exec("python3 -c 'print(6 * 7)'")
        print(result.exit_code, result.stdout)
        sbx.files.write("notes.txt", "hello")

``AsyncClient`` and ``AsyncSandbox`` are the same with ``await``/``async with``.
Errors are the classes of ``sandboxd.errors`` (``NotFound``, ``Unauthenticated``,
...), rebuilt from the daemon's answers; ``SandboxdError`` catches them all.
"""

from sandboxd.client._async import AsyncClient, AsyncSandbox
from sandboxd.client._sync import Client, Sandbox
from sandboxd.client._types import (
    ApiKey,
    AuditRecord,
    AuditVerification,
    ExecEvent,
    ExecResult,
    ExitEvent,
    FileInfo,
    OutputEvent,
    ProcessInfo,
    ProcessOutput,
    SandboxInfo,
    Tenant,
)
from sandboxd.errors import SandboxdError

__all__ = [
    "ApiKey",
    "AsyncClient",
    "AsyncSandbox",
    "AuditRecord",
    "AuditVerification",
    "Client",
    "ExecEvent",
    "ExecResult",
    "ExitEvent",
    "FileInfo",
    "OutputEvent",
    "ProcessInfo",
    "ProcessOutput",
    "Sandbox",
    "SandboxInfo",
    "SandboxdError",
    "Tenant",
]
