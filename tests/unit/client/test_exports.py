"""The public surface: a deliberate export list, and twins that really have the same shape."""

from __future__ import annotations

import inspect

import sandboxd.client as sdk
from sandboxd.client import _async, _sync

EXPORTS = {
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
}

TWINS = [
    (_sync.Client, _async.AsyncClient),
    (_sync.Sandboxes, _async.AsyncSandboxes),
    (_sync.Sandbox, _async.AsyncSandbox),
    (_sync.Processes, _async.AsyncProcesses),
    (_sync.Files, _async.AsyncFiles),
    (_sync.SandboxLifecycle, _async.AsyncSandboxLifecycle),
    (_sync.SandboxEgress, _async.AsyncSandboxEgress),
    (_sync.Snapshots, _async.AsyncSnapshots),
    (_sync.Snapshot, _async.AsyncSnapshot),
    (_sync.Secrets, _async.AsyncSecrets),
    (_sync.TenantEgress, _async.AsyncTenantEgress),
    (_sync.TenantLifecycle, _async.AsyncTenantLifecycle),
    (_sync.Tenants, _async.AsyncTenants),
    (_sync.Keys, _async.AsyncKeys),
    (_sync.Audit, _async.AsyncAudit),
]


def test_exports_are_exactly_the_deliberate_list() -> None:
    assert set(sdk.__all__) == EXPORTS
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None


def test_sync_and_async_twins_have_the_same_methods_and_parameters() -> None:
    for sync_cls, async_cls in TWINS:
        sync_methods = {n for n in vars(sync_cls) if not n.startswith("_")}
        async_methods = {n for n in vars(async_cls) if not n.startswith("_")}
        assert sync_methods == async_methods, sync_cls.__name__
        for name in sync_methods:
            if isinstance(inspect.getattr_static(sync_cls, name), property):
                continue
            sync_params = list(inspect.signature(getattr(sync_cls, name)).parameters)
            async_params = list(inspect.signature(getattr(async_cls, name)).parameters)
            assert sync_params == async_params, f"{sync_cls.__name__}.{name}"


def test_every_public_class_of_one_twin_has_its_twin() -> None:
    """A namespace added to one twin and forgotten in the other fails here, not in a user's code."""
    paired = {sync_cls for sync_cls, _ in TWINS} | {async_cls for _, async_cls in TWINS}
    for module in (_sync, _async):
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module.__name__ and not name.startswith("_"):
                assert value in paired or name == "Opening", f"{module.__name__}.{name} has no twin in TWINS"
