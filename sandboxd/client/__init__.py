"""The Python SDK for sandboxd: sync and async twins of the same shape.

    from sandboxd.client import Client

    with Client() as client, client.sandboxes.create() as sbx:
        result = sbx.exec("python3 -c 'print(6 * 7)'")
        print(result.exit_code, result.stdout)
        sbx.files.write("notes.txt", "hello")

        snap = sbx.snapshot(name="before the change")
        sbx.exec("rm -rf /workspace/*")
        print([c.path for c in sbx.changes(since=snap).changes])
        sbx.restore(snap)                      # the files are back
        forks = snap.fork(3)                   # three new sandboxes from the same state
        sbx.egress.set_policy(allow=["pypi.org", "files.pythonhosted.org"])

``AsyncClient`` and ``AsyncSandbox`` are the same with ``await``/``async with``.
Errors are the classes of ``sandboxd.errors`` (``NotFound``, ``Unauthenticated``,
...), rebuilt from the daemon's answers; ``SandboxdError`` catches them all.
"""

from sandboxd.client._async import AsyncClient, AsyncSandbox, AsyncSnapshot
from sandboxd.client._sync import Client, Sandbox, Snapshot
from sandboxd.client._types import (
    ApiKey,
    AuditRecord,
    AuditVerification,
    Changes,
    EgressLog,
    EgressLogEntry,
    EgressPolicy,
    EgressRule,
    ExecEvent,
    ExecResult,
    ExitEvent,
    FileChange,
    FileInfo,
    LifecycleDefaults,
    LifecycleInfo,
    OutputEvent,
    ProcessInfo,
    ProcessOutput,
    SandboxInfo,
    SecretInfo,
    SnapshotInfo,
    Tenant,
)
from sandboxd.errors import SandboxdError

__all__ = [
    "ApiKey",
    "AsyncClient",
    "AsyncSandbox",
    "AsyncSnapshot",
    "AuditRecord",
    "AuditVerification",
    "Changes",
    "Client",
    "EgressLog",
    "EgressLogEntry",
    "EgressPolicy",
    "EgressRule",
    "ExecEvent",
    "ExecResult",
    "ExitEvent",
    "FileChange",
    "FileInfo",
    "LifecycleDefaults",
    "LifecycleInfo",
    "OutputEvent",
    "ProcessInfo",
    "ProcessOutput",
    "Sandbox",
    "SandboxInfo",
    "SandboxdError",
    "SecretInfo",
    "Snapshot",
    "SnapshotInfo",
    "Tenant",
]
