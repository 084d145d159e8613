"""`sandboxd snapshot / restore / fork / pause / hibernate / wake / changes / lifecycle`.

The commands of snapshots and suspension, registered on the parser by
``sandboxd.cli.build_parser``; they share its output helpers and exit codes.
Ids go to stdout one per line (``for id in $(sandboxd fork SNP -n 3)``);
``--json`` gives the API's own objects.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandboxd import ids
from sandboxd.cli import (
    EXIT_OK,
    Progress,
    _client,
    _json_flag,
    _labels,
    _pairs,
    _print_json,
    _size,
    _when,
    exit_code_for,
    table,
)
from sandboxd.errors import InvalidRequest, SandboxdError

if TYPE_CHECKING:
    from sandboxd.client import Changes, Client, SnapshotInfo

Commands = argparse._SubParsersAction  # type: ignore[type-arg]

_SNAPSHOT_HEADERS = ["ID", "NAME", "SANDBOX", "SIZE", "TOTAL", "CREATED (UTC)", "LABELS"]


def _snapshot_row(info: SnapshotInfo) -> list[Any]:
    return [
        info.id,
        info.name or "-",
        info.sandbox_id or "(imported)",
        _size(info.size_bytes) if info.size_bytes is not None else "-",
        _size(info.total_bytes) if info.total_bytes is not None else "-",
        _when(info.created_at),
        _labels(info.labels),
    ]


# --- snapshots -------------------------------------------------------------------------------


def _snapshot_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        snap = client.sandboxes.get(args.id).snapshot(name=args.name, labels=_pairs(args.label, "label"))
    if args.json:
        _print_json(snap.info)
    else:
        print(snap.id)
    return EXIT_OK


def _snapshot_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        snaps = client.snapshots.list(sandbox_id=args.sandbox, labels=_pairs(args.label, "label"))
    if args.json:
        _print_json([s.info for s in snaps])
    else:
        table(_SNAPSHOT_HEADERS, (_snapshot_row(s.info) for s in snaps))
    return EXIT_OK


def _snapshot_info(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.snapshots.get(args.snapshot).info
    if args.json:
        _print_json(info)
        return EXIT_OK
    rows = [
        ("id", info.id),
        ("name", info.name or "-"),
        ("state", info.state),
        ("sandbox", info.sandbox_id or "(imported)"),
        ("parent", info.parent_id or "-"),
        ("size", _size(info.size_bytes) if info.size_bytes is not None else "-"),
        ("total", _size(info.total_bytes) if info.total_bytes is not None else "-"),
        ("image", info.image),
        ("labels", _labels(info.labels)),
        ("created", _when(info.created_at) + " UTC"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return EXIT_OK


def _each(args: argparse.Namespace, names: list[str], act: Any) -> int:
    """``act(client, name)`` for each name; carry on past failures and exit with the worst code seen."""
    worst = EXIT_OK
    with _client(args) as client:
        for name in names:
            try:
                act(client, name)
            except SandboxdError as exc:
                print(f"sandboxd: {name}: {exc.message}", file=sys.stderr)
                worst = max(worst, exit_code_for(exc))
            else:
                print(name)
    return worst


def _snapshot_rm(args: argparse.Namespace) -> int:
    return _each(args, args.snapshots, lambda client, snp: client.snapshots.delete(snp, force=args.force))


def _snapshot_export(args: argparse.Namespace) -> int:
    target = Path(args.file)
    with _client(args) as client:
        progress = Progress(f"{args.snapshot} -> {target}")
        client.snapshots.export(args.snapshot, sys.stdout.buffer if args.file == "-" else target, progress=progress)
        progress.done()
    return EXIT_OK


def _snapshot_import(args: argparse.Namespace) -> int:
    source = Path(args.file)
    if args.file == "-":
        data: Any = sys.stdin.buffer
        total = None
    else:
        if not source.is_file():
            raise FileNotFoundError(2, "no such file", str(source))
        data, total = source, source.stat().st_size
    with _client(args) as client:
        progress = Progress(f"{args.file} -> sandboxd", total=total)
        snap = client.snapshots.import_(data, progress=progress)
        progress.done()
    if args.json:
        _print_json(snap.info)
    else:
        print(snap.id)
    return EXIT_OK


# --- restore and fork ------------------------------------------------------------------------


def _restore(args: argparse.Namespace) -> int:
    with _client(args) as client:
        sandbox = client.sandboxes.get(args.id).restore(args.snapshot)
    if args.json:
        _print_json(sandbox.info)
    else:
        print(sandbox.id)
    return EXIT_OK


def _fork(args: argparse.Namespace) -> int:
    labels = _pairs(args.label, "label")
    with _client(args) as client:
        if ids.is_id(ids.SANDBOX, args.source):
            forks = client.sandboxes.get(args.source).fork(args.n, labels=labels)
        else:
            forks = client.snapshots.fork(args.source, args.n, labels=labels)
    if args.json:
        _print_json([f.info for f in forks])
    else:
        for fork in forks:
            print(fork.id)
    return EXIT_OK


# --- suspension and lifecycle ----------------------------------------------------------------


def _pause(args: argparse.Namespace) -> int:
    return _each(args, args.ids, lambda client, sid: client.sandboxes.get(sid).pause())


def _hibernate(args: argparse.Namespace) -> int:
    return _each(args, args.ids, lambda client, sid: client.sandboxes.get(sid).hibernate())


def _wake(args: argparse.Namespace) -> int:
    return _each(args, args.ids, lambda client, sid: client.sandboxes.get(sid).resume())


def _optional_int(text: str) -> int | None:
    """A number of seconds, or "none" to clear the setting."""
    if text.lower() in ("none", "off", "-"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (or 'none')") from None


# Options of `lifecycle` and the fields they set; one not given is absent from args (SUPPRESS): left as it is.
_LIFECYCLE_OPTIONS = {
    "idle_timeout": "idle_timeout_s",
    "idle_action": "idle_action",
    "max_lifetime": "max_lifetime_s",
    "on_wake": "on_wake",
}


def _lifecycle(args: argparse.Namespace) -> int:
    given = vars(args)
    # "none" (or '' for a command) clears a value: the tenant's or the server's default applies again.
    wanted = {
        field: None if given[opt] in ("", "none") else given[opt]
        for opt, field in _LIFECYCLE_OPTIONS.items()
        if opt in given
    }
    with _client(args) as client:
        lifecycle = client.sandboxes.get(args.id).lifecycle
        info = lifecycle.set(**wanted) if wanted else lifecycle.get()
    if args.json:
        _print_json(info)
        return EXIT_OK
    source = info.source
    rows = [
        ("state", info.state),
        ("idle timeout", f"{info.idle_timeout_s} s" if info.idle_timeout_s else "-", source.get("idle_timeout_s")),
        ("idle action", info.idle_action, source.get("idle_action")),
        ("max lifetime", f"{info.max_lifetime_s} s" if info.max_lifetime_s else "-", source.get("max_lifetime_s")),
        ("on wake", info.on_wake or "-"),
        ("idle for", f"{info.idle_for_s:.0f} s" + (" (a call is running)" if info.busy else "")),
    ]
    width = max(len(row[0]) for row in rows)
    for key, value, *origin in rows:
        print(f"{key.ljust(width)}  {value}" + (f"  (from {origin[0]})" if origin and origin[0] else ""))
    return EXIT_OK


# --- changes ---------------------------------------------------------------------------------

_MARK = {"added": "A", "modified": "M", "deleted": "D"}


def _sizes(before: int | None, after: int | None) -> str:
    if before is not None and after is not None and before != after:
        return f"{_size(before)} -> {_size(after)}"
    size = after if after is not None else before
    return _size(size) if size is not None else "-"


def _changes(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = _compare(client, args)
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"changes from {result.base} to {result.target} under {result.path}", file=sys.stderr)
    table(
        ["", "TYPE", "SIZE", "PATH"],
        ([_MARK.get(c.change, "?"), c.type, _sizes(c.size_before, c.size_after), c.path] for c in result.changes),
    )
    if result.truncated:
        print("sandboxd: more changes than listed; narrow it with --path", file=sys.stderr)
    for change in result.changes:
        if change.diff:
            sys.stdout.write(change.diff if change.diff.endswith("\n") else change.diff + "\n")
    return EXIT_OK


def _compare(client: Client, args: argparse.Namespace) -> Changes:
    if ids.is_id(ids.SNAPSHOT, args.source):
        if args.to is None or args.since is not None:
            raise InvalidRequest("between snapshots, name both: sandboxd changes SNAPSHOT OTHER_SNAPSHOT")
        return client.snapshots.changes(args.source, args.to, path=args.path, diff=args.diff)
    if args.to is not None:
        raise InvalidRequest("for a sandbox, give the snapshot to compare with as --since SNAPSHOT")
    return client.sandboxes.get(args.source).changes(since=args.since, path=args.path, diff=args.diff)


# --- the parser ------------------------------------------------------------------------------


def add_commands(commands: Commands) -> None:
    snapshot = commands.add_parser(
        "snapshot",
        help="snapshots: create, ls, info, rm, export, import",
        description="A snapshot saves a sandbox's whole filesystem (not its processes). "
        "Roll back with `sandboxd restore`, start copies with `sandboxd fork`.",
    )
    snapshot_commands = snapshot.add_subparsers(dest="snapshot_command", required=True, metavar="COMMAND")

    create = snapshot_commands.add_parser("create", help="snapshot a sandbox and print the snapshot's id")
    create.add_argument("id", help="the sandbox")
    create.add_argument("--name", help="what it is, e.g. 'before upgrade'")
    create.add_argument("--label", action="append", metavar="KEY=VALUE", help="repeatable")
    _json_flag(create)
    create.set_defaults(func=_snapshot_create)

    ls = snapshot_commands.add_parser("ls", aliases=["list"], help="list snapshots")
    ls.add_argument("--sandbox", metavar="ID", help="only those taken of this sandbox")
    ls.add_argument("--label", action="append", metavar="KEY=VALUE", help="only those with this label; repeatable")
    _json_flag(ls)
    ls.set_defaults(func=_snapshot_list)

    info = snapshot_commands.add_parser("info", help="describe a snapshot")
    info.add_argument("snapshot")
    _json_flag(info)
    info.set_defaults(func=_snapshot_info)

    rm = snapshot_commands.add_parser("rm", help="delete snapshots")
    rm.add_argument("snapshots", nargs="+", metavar="SNAPSHOT")
    rm.add_argument("--force", action="store_true", help="even while sandboxes or snapshots are built on it")
    rm.set_defaults(func=_snapshot_rm)

    export = snapshot_commands.add_parser(
        "export", help="write a snapshot to a tar file (- for stdout), for `snapshot import` elsewhere"
    )
    export.add_argument("snapshot")
    export.add_argument("file")
    export.set_defaults(func=_snapshot_export)

    import_ = snapshot_commands.add_parser("import", help="load a snapshot from a tar file (- for stdin)")
    import_.add_argument("file")
    _json_flag(import_)
    import_.set_defaults(func=_snapshot_import)

    restore = commands.add_parser(
        "restore", help="roll a sandbox's files back to a snapshot (same id; processes restart)"
    )
    restore.add_argument("id", help="the sandbox")
    restore.add_argument("snapshot")
    _json_flag(restore)
    restore.set_defaults(func=_restore)

    fork = commands.add_parser(
        "fork",
        help="new sandboxes from a snapshot (or from a sandbox as it is now); prints their ids",
        description="Forking a sandbox takes a snapshot of it first and forks that; the snapshot stays.",
    )
    fork.add_argument("source", metavar="SNAPSHOT_OR_SANDBOX")
    fork.add_argument("-n", type=int, default=1, help="how many (1-64, default 1)")
    fork.add_argument("--label", action="append", metavar="KEY=VALUE", help="on each fork; repeatable")
    _json_flag(fork)
    fork.set_defaults(func=_fork)

    for name, func, text, aliases in (
        ("pause", _pause, "freeze a sandbox's processes (memory kept)", []),
        ("hibernate", _hibernate, "save a sandbox to disk and free its memory (processes restart on wake)", []),
        ("wake", _wake, "wake a paused or hibernated sandbox", ["resume"]),
    ):
        command = commands.add_parser(name, aliases=aliases, help=text)
        command.add_argument("ids", nargs="+", metavar="ID")
        command.set_defaults(func=func)

    lifecycle = commands.add_parser(
        "lifecycle",
        help="show or change when a sandbox suspends itself",
        description="Without options, shows the sandbox's idle policy; options change it ('none' clears a value).",
    )
    lifecycle.add_argument("id")
    unset = argparse.SUPPRESS
    lifecycle.add_argument("--idle-timeout", type=_optional_int, default=unset, metavar="SECONDS")
    lifecycle.add_argument("--idle-action", choices=["pause", "hibernate", "delete", "none"], default=unset)
    lifecycle.add_argument("--max-lifetime", type=_optional_int, default=unset, metavar="SECONDS")
    lifecycle.add_argument("--on-wake", default=unset, metavar="COMMAND", help="run on each wake ('' clears it)")
    _json_flag(lifecycle)
    lifecycle.set_defaults(func=_lifecycle)

    changes = commands.add_parser(
        "changes",
        help="what changed in a sandbox since a snapshot, or between two snapshots",
        description="`changes ID [--since SNAPSHOT]` compares a sandbox with a snapshot (default: its latest); "
        "`changes SNAPSHOT OTHER` compares two snapshots. A added, M modified, D deleted.",
    )
    changes.add_argument("source", metavar="SANDBOX_OR_SNAPSHOT")
    changes.add_argument("to", nargs="?", metavar="OTHER_SNAPSHOT")
    changes.add_argument("--since", metavar="SNAPSHOT", help="the snapshot to compare a sandbox with")
    changes.add_argument("--path", default="/", help="only under this directory (default /)")
    changes.add_argument("--diff", action="store_true", help="show a unified diff of each changed text file")
    _json_flag(changes)
    changes.set_defaults(func=_changes)
