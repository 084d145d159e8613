"""The `sandboxd` command: run the daemon, drive sandboxes through it, and look after it.

Everything but ``serve`` and ``audit verify`` (which read the local database) talks
to a running daemon through the Python SDK, at SANDBOXD_URL (or ``--url``) with
the key in SANDBOXD_API_KEY.

Output: tables for people; ``--json`` on every listing and info command for
scripts. Errors go to stderr as ``sandboxd: <message>``.

Exit codes scripts can rely on:
    0  success
    1  the operation failed (including an unreachable daemon, a broken audit chain)
    2  usage: bad arguments, or values the daemon refused as invalid
    3  not found: the sandbox, file, image or tenant named does not exist
    4  authentication: no key, a bad or revoked key, or a key that may not do this
    n  ``exec`` exits with the command's own code (124 if it timed out, 128+N if signal N ended it)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TextIO

from sandboxd.errors import (
    Forbidden,
    ImageNotFound,
    InvalidRequest,
    NotFound,
    SandboxdError,
    Unauthenticated,
)

if TYPE_CHECKING:
    from sandboxd.client import Client, Sandbox

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_TIMED_OUT = 124  # as timeout(1)
EXIT_INTERRUPTED = 130
EXIT_SIGPIPE = 141


def exit_code_for(error: SandboxdError) -> int:
    if isinstance(error, NotFound | ImageNotFound):
        return EXIT_NOT_FOUND
    if isinstance(error, Unauthenticated | Forbidden):
        return EXIT_AUTH
    if isinstance(error, InvalidRequest):
        return EXIT_USAGE
    return EXIT_FAILED


# --- the daemon itself (local) ---------------------------------------------------------------
# Imported inside the commands: the settings and the server cost a quarter second to import,
# which every other command would pay for nothing.


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sandboxd.api.app import create_app
    from sandboxd.config import Settings
    from sandboxd.daemon import Daemon

    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "data_dir": args.data_dir}.items() if v}
    settings = Settings(**overrides)

    def announce(daemon: Daemon, reconciled: dict[str, int]) -> None:
        out = sys.stderr
        if any(reconciled.values()):
            print(
                "sandboxd: reconciled with Docker: " + ", ".join(f"{n} {what}" for what, n in reconciled.items() if n),
                file=out,
            )
        for warning in daemon.warnings:
            print(f"sandboxd: WARNING: {warning}", file=out)
        if daemon.new_admin_key:
            print(
                "\n  sandboxd admin API key (shown once; store it now):\n\n"
                f"    {daemon.new_admin_key}\n\n"
                f"  export SANDBOXD_URL=http://{settings.host}:{settings.port}\n"
                f"  export SANDBOXD_API_KEY={daemon.new_admin_key}\n",
                file=out,
            )
        print(f"sandboxd: listening on http://{settings.host}:{settings.port} (data in {settings.data_dir})", file=out)
        out.flush()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, on_started=announce)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    if args.remote:
        return _audit_verify_remote(args)
    from sandboxd.config import Settings
    from sandboxd.service.audit import AuditLog
    from sandboxd.store import Store

    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    if not settings.database_path.exists():
        print(f"sandboxd: no database at {settings.database_path}", file=sys.stderr)
        return 1
    store = Store(settings.database_path)
    try:
        report = AuditLog(store).verify()
    finally:
        store.close()
    if report.ok:
        print(f"audit chain intact: {report.checked} records verified")
        return 0
    print(f"audit chain BROKEN at record {report.first_bad_seq}: {report.problem}", file=sys.stderr)
    return 1


def _audit_verify_remote(args: argparse.Namespace) -> int:
    with _client(args) as client:
        report = client.audit.verify()
    if args.json:
        _print_json(report)
    if report.ok:
        if not args.json:
            print(f"audit chain intact: {report.checked} records verified")
        return EXIT_OK
    print(f"audit chain BROKEN at record {report.first_bad_seq}: {report.problem}", file=sys.stderr)
    return EXIT_FAILED


# --- output ----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A result as the JSON the API sent: models dumped, dataclasses flattened with their extras."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        body = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        body.update(body.pop("extra", None) or {})
        return {k: _plain(v) for k, v in body.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _print_json(value: Any) -> None:
    print(json.dumps(_plain(value), indent=2, sort_keys=True))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO | None = None) -> None:
    """Columns aligned to their widest cell; the last column is not padded."""
    cells = [[str(h) for h in headers], *([("" if c is None else str(c)) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        line = "  ".join(cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row))
        print(line.rstrip(), file=out or sys.stdout)


def _when(value: datetime | float | None) -> str:
    if value is None:
        return "-"
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


class Progress:
    """Bytes moved so far, on one rewritten stderr line; silent unless stderr is a terminal.

    Given the ``total`` to expect, it draws a bar with the share done.
    """

    BAR_WIDTH = 24

    def __init__(self, what: str, stream: TextIO | None = None, *, total: int | None = None) -> None:
        self._what = what
        self._stream = stream or sys.stderr
        self._on = self._stream.isatty()
        self._last = 0.0
        self._total = 0
        self._expected = total

    def __call__(self, total: int) -> None:
        self._total = total
        now = time.monotonic()
        if self._on and now - self._last >= 0.1:
            self._last = now
            self._stream.write(f"\r{self._what}: {self._shown(total)}  ")
            self._stream.flush()

    def _shown(self, done: int) -> str:
        if not self._expected:
            return _size(done)
        share = min(done / self._expected, 1.0)
        filled = round(share * self.BAR_WIDTH)
        bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
        return f"[{bar}] {share:4.0%} {_size(done)} / {_size(self._expected)}"

    def done(self) -> None:
        if self._on:
            self._stream.write(f"\r{self._what}: {self._shown(self._total)} done\n")
            self._stream.flush()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# --- arguments -------------------------------------------------------------------------------


def _pairs(values: Sequence[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"{what} {item!r} must look like KEY=VALUE")
        pairs[key] = value
    return pairs


def _client(args: argparse.Namespace) -> Client:
    from sandboxd.client import Client

    return Client(url=args.url)


# --- sandboxes -------------------------------------------------------------------------------


def _sandbox_row(info: Any) -> list[Any]:
    limits = info.limits
    return [
        info.id,
        info.state,
        info.image,
        f"{limits.cpus:g}",
        f"{limits.memory_mb} MiB",
        _when(info.created_at),
        _labels(info.labels),
    ]


_SANDBOX_HEADERS = ["ID", "STATE", "IMAGE", "CPUS", "MEMORY", "CREATED (UTC)", "LABELS"]


def _create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        sandbox = client.sandboxes.create(
            image=args.image,
            cpus=args.cpus,
            memory_mb=args.memory,
            pids=args.pids,
            disk_gb=args.disk_gb,
            labels=_pairs(args.label, "label"),
            env=_pairs(args.env, "--env"),
            idle_timeout_s=args.idle_timeout,
            max_lifetime_s=args.max_lifetime,
            egress=args.allow,
            secrets=args.secret,
            keep=True,
        )
    if args.json:
        _print_json(sandbox.info)
    else:
        print(sandbox.id)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        sandboxes = client.sandboxes.list(state=args.state, labels=_pairs(args.label, "label"))
    if args.json:
        _print_json([s.info for s in sandboxes])
    else:
        table(_SANDBOX_HEADERS, (_sandbox_row(s.info) for s in sandboxes))
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.sandboxes.get(args.id).info
    if args.json:
        _print_json(info)
        return EXIT_OK
    limits = info.limits
    rows = [
        ("id", info.id),
        ("state", info.state + (f" ({info.error})" if info.error else "")),
        ("image", info.image),
        ("cpus", f"{limits.cpus:g}"),
        ("memory", f"{limits.memory_mb} MiB"),
        ("pids", limits.pids),
        ("nofile", limits.nofile),
        ("disk", f"{limits.disk_gb} GB" if limits.disk_gb else "-"),
        ("labels", _labels(info.labels)),
        ("env", ", ".join(sorted(info.env)) or "-"),
        ("idle timeout", f"{info.idle_timeout_s} s" if info.idle_timeout_s else "-"),
        ("max lifetime", f"{info.max_lifetime_s} s" if info.max_lifetime_s else "-"),
        ("created", _when(info.created_at) + " UTC"),
        ("updated", _when(info.updated_at) + " UTC"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return EXIT_OK


def _rm(args: argparse.Namespace) -> int:
    """Delete each sandbox named; carry on past failures and exit with the worst code seen."""
    worst = EXIT_OK
    with _client(args) as client:
        for sandbox_id in args.ids:
            try:
                client.sandboxes.get(sandbox_id, keep=False).delete()
            except SandboxdError as exc:
                print(f"sandboxd: {sandbox_id}: {exc.message}", file=sys.stderr)
                worst = max(worst, exit_code_for(exc))
            else:
                print(sandbox_id)
    return worst


def _exec(args: argparse.Namespace) -> int:
    if (args.command is None) == (not args.argv):
        raise _Usage("give a command after --, or a shell string with -c (not both)")
    cmd: str | list[str] = args.command if args.command is not None else list(args.argv)
    stdin = sys.stdin.buffer.read() if args.interactive else None
    out, err = sys.stdout.buffer, sys.stderr.buffer
    with _client(args) as client:
        sandbox = client.sandboxes.get(args.id)
        for event in sandbox.exec_stream(
            cmd, cwd=args.cwd, env=_pairs(args.env, "--env"), stdin=stdin, timeout=args.timeout
        ):
            if hasattr(event, "stream"):
                target = out if event.stream == "stdout" else err
                target.write(event.data)
                target.flush()
                continue
            if event.timed_out:
                print(f"sandboxd: the command timed out after {args.timeout or 'the default'} s", file=sys.stderr)
                return EXIT_TIMED_OUT
            if event.exit_code is None:
                return 128 + (event.signal or 0)
            return event.exit_code
    return EXIT_FAILED


def _shell(args: argparse.Namespace) -> int:
    from sandboxd.client._http import resolve
    from sandboxd.terminal import run_shell

    url, api_key = resolve(args.url, None)
    if not api_key:
        raise Unauthenticated("no API key: set SANDBOXD_API_KEY")
    return run_shell(url, api_key, args.id, command=args.command)


# --- cp --------------------------------------------------------------------------------------


def _remote(spec: str) -> tuple[str, str] | None:
    """(sandbox id, path) for "sbx_...:/path"; None for a local path (which may hold ":" too)."""
    from sandboxd import ids

    head, sep, path = spec.partition(":")
    if sep and ids.is_id(ids.SANDBOX, head):
        return head, path or "/workspace"
    return None


def _cp(args: argparse.Namespace) -> int:
    src, dst = _remote(args.src), _remote(args.dst)
    if (src is None) == (dst is None):
        raise _Usage("exactly one of SRC and DST must be in a sandbox, written SANDBOX_ID:PATH")
    with _client(args) as client:
        if dst is not None:
            sandbox = client.sandboxes.get(dst[0])
            _upload(sandbox, Path(args.src), dst[1])
        else:
            assert src is not None
            sandbox = client.sandboxes.get(src[0])
            _download(sandbox, src[1], Path(args.dst))
    return EXIT_OK


def _upload(sandbox: Sandbox, local: Path, remote: str) -> None:
    if not local.exists():
        raise NotFound(f"{local}: no such file or directory")
    target = remote
    # As cp -r: into an existing directory (or one named with a trailing /), under the source's name.
    if remote.endswith("/") or _remote_is_dir(sandbox, remote):
        target = str(PurePosixPath(remote) / local.resolve().name)
    progress = Progress(f"{local} -> {sandbox.id}:{target}")
    if local.is_dir():
        sandbox.files.upload_dir(local, target, progress=progress)
    else:
        with local.open("rb") as f:
            sandbox.files.write(target, f, mode=local.stat().st_mode & 0o777, progress=progress)
    progress.done()


def _remote_is_dir(sandbox: Sandbox, path: str) -> bool:
    try:
        return sandbox.files.stat(path).type == "dir"
    except NotFound:
        return False


def _download(sandbox: Sandbox, remote: str, local: Path) -> None:
    info = sandbox.files.stat(remote)
    name = PurePosixPath(info.path or remote).name or "workspace"
    target = local / name if local.is_dir() else local
    progress = Progress(f"{sandbox.id}:{remote} -> {target}")
    if info.type == "dir":
        for line in sandbox.files.download_dir(remote, target, progress=progress):
            print(f"sandboxd: skipped {line}", file=sys.stderr)
    else:
        _save(sandbox.files.read_stream(remote, progress=progress), target, info.mode)
    progress.done()


def _save(chunks: Iterable[bytes], target: Path, mode: int | None) -> None:
    """Write to a temporary file beside ``target`` and rename, so a failed copy leaves nothing half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        if mode is not None:
            os.chmod(temp, mode & 0o777)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# --- tenants, keys, audit --------------------------------------------------------------------


def _tenant_id(client: Client, tenant: str) -> str:
    from sandboxd import ids

    if ids.is_id(ids.TENANT, tenant):
        return tenant
    for candidate in client.tenants.list():
        if candidate.name == tenant:
            return candidate.id
    raise NotFound(f"no tenant named {tenant!r} (see: sandboxd tenants ls)")


def _tenants_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        tenant = client.tenants.create(args.name)
    if args.json:
        _print_json(tenant)
    else:
        print(tenant.id)
    return EXIT_OK


def _tenants_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        tenants = client.tenants.list()
    if args.json:
        _print_json(tenants)
    else:
        table(["ID", "NAME", "CREATED (UTC)"], ([t.id, t.name, _when(t.created_at)] for t in tenants))
    return EXIT_OK


def _keys_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        key = client.keys.create(_tenant_id(client, args.tenant), name=args.name, admin=args.admin)
    if args.json:
        _print_json(key)
    else:
        print(key.key)
        print(f"sandboxd: key {key.id} created; this is the only time it is shown", file=sys.stderr)
    return EXIT_OK


def _keys_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        tenant_id = _tenant_id(client, args.tenant) if args.tenant else None
        keys = client.keys.list(tenant_id=tenant_id)
    if args.json:
        _print_json(keys)
    else:
        rows = (
            [k.id, k.tenant_id, k.name or "-", "yes" if k.admin else "no", _when(k.created_at), _when(k.revoked_at)]
            for k in keys
        )
        table(["ID", "TENANT", "NAME", "ADMIN", "CREATED (UTC)", "REVOKED (UTC)"], rows)
    return EXIT_OK


def _keys_revoke(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.keys.revoke(args.key_id)
    print(args.key_id)
    return EXIT_OK


def _audit_query(args: argparse.Namespace) -> int:
    with _client(args) as client:
        records = client.audit.query(sandbox_id=args.sandbox, action=args.action, limit=args.limit)
    if args.json:
        _print_json(records)
        return EXIT_OK
    rows = (
        [
            r.seq,
            _when(r.ts),
            r.action,
            r.sandbox_id or "-",
            r.result + (f": {r.error}" if r.error else ""),
            json.dumps(r.args, sort_keys=True) if r.args else "-",
        ]
        for r in records
    )
    table(["SEQ", "TIME (UTC)", "ACTION", "SANDBOX", "RESULT", "ARGS"], rows)
    return EXIT_OK


# --- the parser ------------------------------------------------------------------------------


class _Usage(Exception):
    """A combination of arguments argparse cannot express; reported like its own usage errors."""


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _add_sandbox_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    create = commands.add_parser("create", help="create a sandbox and print its id")
    create.add_argument("--image", help="a local image (default: the sandbox image)")
    create.add_argument("--cpus", type=float, help="CPU quota in cores, e.g. 0.5")
    create.add_argument("--memory", type=int, metavar="MB", help="memory limit in MiB")
    create.add_argument("--pids", type=int, help="most processes at once")
    create.add_argument("--disk-gb", type=int, help="writable layer size (where the storage driver allows)")
    create.add_argument("--label", action="append", metavar="KEY=VALUE", help="repeatable")
    create.add_argument("--env", action="append", metavar="KEY=VALUE", help="repeatable")
    create.add_argument("--idle-timeout", type=int, metavar="SECONDS")
    create.add_argument("--max-lifetime", type=int, metavar="SECONDS")
    create.add_argument(
        "--allow",
        action="append",
        metavar="HOST[:PORT]",
        help="egress rules of its own: allow this host; repeatable (default: the tenant's policy)",
    )
    create.add_argument(
        "--secret", action="append", metavar="NAME", help="a stored secret it may use (as a placeholder); repeatable"
    )
    _json_flag(create)
    create.set_defaults(func=_create)

    ls = commands.add_parser("ls", aliases=["list"], help="list sandboxes")
    ls.add_argument("--state", help="only sandboxes in this state (running, paused, stopped, ...)")
    ls.add_argument("--label", action="append", metavar="KEY=VALUE", help="only those with this label; repeatable")
    _json_flag(ls)
    ls.set_defaults(func=_list)

    info = commands.add_parser("info", help="describe a sandbox")
    info.add_argument("id")
    _json_flag(info)
    info.set_defaults(func=_info)

    rm = commands.add_parser("rm", help="delete sandboxes and everything in them")
    rm.add_argument("ids", nargs="+", metavar="ID")
    rm.set_defaults(func=_rm)

    exec_ = commands.add_parser(
        "exec",
        help="run a command in a sandbox, streaming its output; exits with its exit code",
        usage="%(prog)s [options] ID (-c 'SHELL STRING' | -- COMMAND [ARG ...])",
    )
    exec_.add_argument("id")
    exec_.add_argument("-c", dest="command", metavar="SHELL_STRING", help="run this through bash -c")
    exec_.add_argument("--cwd", help="working directory (default /workspace)")
    exec_.add_argument("--env", action="append", metavar="KEY=VALUE", help="repeatable")
    exec_.add_argument("--timeout", type=float, metavar="SECONDS", help="kill the command and its children after this")
    exec_.add_argument("-i", "--interactive", action="store_true", help="send this program's stdin to the command")
    exec_.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    exec_.set_defaults(func=_exec, trailing_argv=True)

    shell = commands.add_parser(
        "shell",
        help="an interactive terminal in a sandbox (like ssh); exits with the shell's status",
        description="Opens a login shell (or runs -c COMMAND) on a terminal inside the sandbox. "
        "Keys go through untouched: Ctrl-C interrupts the command in the sandbox, Ctrl-D or `exit` leaves.",
    )
    shell.add_argument("id")
    shell.add_argument("-c", dest="command", metavar="COMMAND", help="run this instead of a login shell")
    shell.set_defaults(func=_shell)

    cp = commands.add_parser(
        "cp",
        help="copy files or directories into or out of a sandbox",
        description="Copy between here and a sandbox: `cp ./local ID:/path` or `cp ID:/path ./local`. "
        "Directories are copied whole; into an existing directory, the copy takes the source's name.",
    )
    cp.add_argument("src")
    cp.add_argument("dst")
    cp.set_defaults(func=_cp)


_EPILOG = (
    "The API key is read from SANDBOXD_API_KEY. Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, "
    "4 authentication; exec exits with the command's own code."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandboxd", description="Persistent, isolated sandboxes for AI agents.", epilog=_EPILOG
    )
    parser.add_argument(
        "--url",
        default=None,
        help="the daemon (default: SANDBOXD_URL, else http://127.0.0.1:8080); key: SANDBOXD_API_KEY",
    )
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the daemon (HTTP API)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1, or SANDBOXD_HOST)")
    serve.add_argument("--port", type=int, help="listen port (default 8080, or SANDBOXD_PORT)")
    serve.add_argument("--data-dir", help="state directory (or SANDBOXD_DATA_DIR)")
    serve.set_defaults(func=_serve)

    sandbox = commands.add_parser("sandbox", help="sandboxes: create, ls, info, rm, exec, cp")
    _add_sandbox_commands(sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="COMMAND"))
    # The everyday ones also at the top level: `sandboxd exec ID -- ls`.
    _add_sandbox_commands(commands)
    # Imported here: they build on this module's helpers, so this module must be complete first.
    from sandboxd import cli_egress, cli_snapshots

    cli_snapshots.add_commands(commands)
    cli_egress.add_commands(commands)

    tenants = commands.add_parser("tenants", help="tenants (admin key)")
    tenant_commands = tenants.add_subparsers(dest="tenants_command", required=True, metavar="COMMAND")
    tenant_create = tenant_commands.add_parser("create", help="create a tenant and print its id")
    tenant_create.add_argument("name")
    _json_flag(tenant_create)
    tenant_create.set_defaults(func=_tenants_create)
    tenant_ls = tenant_commands.add_parser("ls", aliases=["list"], help="list tenants")
    _json_flag(tenant_ls)
    tenant_ls.set_defaults(func=_tenants_list)

    keys = commands.add_parser("keys", help="API keys (admin key)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    key_create = key_commands.add_parser("create", help="create a key and print it (shown once)")
    key_create.add_argument("--tenant", required=True, help="tenant id or name")
    key_create.add_argument("--name", default="", help="what the key is for")
    key_create.add_argument("--admin", action="store_true", help="may manage tenants and keys")
    _json_flag(key_create)
    key_create.set_defaults(func=_keys_create)
    key_ls = key_commands.add_parser("ls", aliases=["list"], help="list keys")
    key_ls.add_argument("--tenant", help="only this tenant's (id or name)")
    _json_flag(key_ls)
    key_ls.set_defaults(func=_keys_list)
    key_revoke = key_commands.add_parser("revoke", help="revoke a key at once")
    key_revoke.add_argument("key_id")
    key_revoke.set_defaults(func=_keys_revoke)

    audit = commands.add_parser("audit", help="the audit trail: list records, or verify the chain")
    audit.add_argument("--sandbox", help="only records about this sandbox")
    audit.add_argument("--action", help="only this action (e.g. exec, sandbox.create)")
    audit.add_argument("--limit", type=int, default=100, help="at most this many records (default 100)")
    _json_flag(audit)
    audit.set_defaults(func=_audit_query)
    audit_commands = audit.add_subparsers(dest="audit_command", required=False, metavar="COMMAND")
    verify = audit_commands.add_parser("verify", help="check the hash chain of the local audit log")
    verify.add_argument("--data-dir", help="state directory (or SANDBOXD_DATA_DIR)")
    verify.add_argument("--remote", action="store_true", help="ask the daemon (GET /v1/audit/verify) instead")
    _json_flag(verify)
    verify.set_defaults(func=_audit_verify)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse, keeping everything after ``--`` of an ``exec`` as the command, options and all."""
    parser = build_parser()
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        if "exec" in argv[:cut]:
            args = parser.parse_args(argv[:cut])
            if getattr(args, "trailing_argv", False):
                args.argv = [*args.argv, *argv[cut + 1 :]]
                return args
    return parser.parse_args(argv)


def _hint(error: SandboxdError) -> str:
    message = error.message
    if isinstance(error, Unauthenticated) and not os.environ.get("SANDBOXD_API_KEY"):
        message += " (set SANDBOXD_API_KEY to a key printed by `sandboxd serve` or `sandboxd keys create`)"
    elif "cannot reach sandboxd" in message:
        message += " (is the daemon running? `sandboxd serve`; or set SANDBOXD_URL)"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except _Usage as exc:
        print(f"sandboxd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SandboxdError as exc:
        print(f"sandboxd: {_hint(exc)}", file=sys.stderr)
        return exit_code_for(exc)
    except BrokenPipeError:
        # The reader went away (`sandboxd exec ... | head`): stop quietly, as a shell pipeline expects.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_SIGPIPE
    except FileNotFoundError as exc:
        print(f"sandboxd: {exc.filename or exc}: no such file or directory", file=sys.stderr)
        return EXIT_NOT_FOUND
    except OSError as exc:
        print(f"sandboxd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
