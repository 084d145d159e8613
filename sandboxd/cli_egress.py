"""`sandboxd secrets set / ls / rm` and `sandboxd egress policy / default / log`.

Registered on the parser by ``sandboxd.cli.build_parser``. A secret's value is
read from stdin, or typed at a prompt that does not echo it; never from the
command line, where it would land in the shell's history and in ``ps`` for
every user of the machine to read.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING, Any

from sandboxd.cli import EXIT_OK, _client, _json_flag, _print_json, _size, _when, exit_code_for, table
from sandboxd.errors import InvalidRequest, SandboxdError

if TYPE_CHECKING:
    from sandboxd.client import EgressPolicy

Commands = argparse._SubParsersAction  # type: ignore[type-arg]


# --- secrets ---------------------------------------------------------------------------------


def read_secret_value(name: str) -> str:
    """The value: typed at a prompt without echo on a terminal, else all of stdin less one final newline.

    Raises:
        InvalidRequest: nothing was given.
    """
    if sys.stdin.isatty():
        value = getpass.getpass(f"value of {name} (not shown): ")
    else:
        value = sys.stdin.read()
        # `echo "$TOKEN" | sandboxd secrets set ...` adds a newline that is not part of the value.
        value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise InvalidRequest(f"no value for {name}: pipe it on stdin, e.g. `sandboxd secrets set {name} ... < file`")
    return value


def _describe_injection(inject: dict[str, object] | None) -> str:
    if not inject:
        return "placeholder"
    kind = inject.get("type")
    if kind == "header":
        return f"header {inject.get('header')}: {inject.get('template')}"
    if kind == "basic":
        return f"basic auth as {inject.get('username')}"
    if kind == "query":
        return f"query ?{inject.get('param')}="
    return json.dumps(inject, sort_keys=True)


def _secrets_set(args: argparse.Namespace) -> int:
    value = read_secret_value(args.name)
    with _client(args) as client:
        info = client.secrets.put(
            args.name,
            value,
            hosts=args.host,
            header=args.header,
            basic=args.basic,
            query=args.query,
            allow_in_body=args.allow_in_body,
            allow_in_query=args.allow_in_query,
        )
    if args.json:
        _print_json(info)
    else:
        print(info.name)
    return EXIT_OK


def _secrets_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.secrets.list()
    if args.json:
        _print_json(found)
        return EXIT_OK
    rows = (
        [s.name, ",".join(s.hosts), _describe_injection(s.inject), _when(s.updated_at)]
        for s in found
    )
    table(["NAME", "HOSTS", "INJECTED AS", "UPDATED (UTC)"], rows)
    return EXIT_OK


def _secrets_rm(args: argparse.Namespace) -> int:
    worst = EXIT_OK
    with _client(args) as client:
        for name in args.names:
            try:
                client.secrets.delete(name)
            except SandboxdError as exc:
                print(f"sandboxd: {name}: {exc.message}", file=sys.stderr)
                worst = max(worst, exit_code_for(exc))
            else:
                print(name)
    return worst


# --- egress ----------------------------------------------------------------------------------


def _print_policy(policy: EgressPolicy) -> None:
    where = {
        "sandbox": "its own rules",
        "tenant": "the tenant's default",
        "default": "none set: everything is denied",
    }[policy.source]
    print(f"policy of {policy.sandbox_id or 'tenant ' + policy.tenant_id}: {where}", file=sys.stderr)
    rows = (
        [
            r.get("action"),
            r.get("host"),
            r.get("port") or "*",
            ",".join(r.get("methods") or []) or "*",  # type: ignore[arg-type]
            r.get("path_prefix") or "*",
            r.get("name") or "",
        ]
        for r in policy.rules
    )
    table(["ACTION", "HOST", "PORT", "METHODS", "PATH", "NAME"], rows)


def _changing(args: argparse.Namespace) -> bool:
    return bool(args.allow or args.deny or args.clear or args.rules_json)


def _rules(args: argparse.Namespace) -> list[Any]:
    """Full rules from --rules-json (a JSON list, or - to read it from stdin); --allow and --deny come after."""
    if not args.rules_json:
        return []
    text = sys.stdin.read() if args.rules_json == "-" else args.rules_json
    try:
        rules = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"--rules-json is not JSON: {exc}") from None
    if isinstance(rules, dict):
        rules = rules.get("rules")
    if not isinstance(rules, list):
        raise InvalidRequest('--rules-json must be a list of rules, or {"rules": [...]}')
    return rules


def _egress_policy(args: argparse.Namespace) -> int:
    with _client(args) as client:
        egress = client.sandboxes.get(args.id).egress
        if args.clear:
            if args.allow or args.deny or args.rules_json:
                raise InvalidRequest("--clear drops the sandbox's rules; give it alone")
            policy = egress.clear_policy()
        elif _changing(args):
            policy = egress.set_policy(_rules(args), allow=args.allow, deny=args.deny)
        else:
            policy = egress.policy()
    if args.json:
        _print_json(policy)
    else:
        _print_policy(policy)
    return EXIT_OK


def _egress_default(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.clear:
            raise InvalidRequest("the tenant default cannot be cleared, only replaced: give --allow/--deny rules")
        if _changing(args):
            policy = client.egress.set_policy(_rules(args), allow=args.allow, deny=args.deny, tenant_id=args.tenant)
        else:
            policy = client.egress.policy(tenant_id=args.tenant)
    if args.json:
        _print_json(policy)
    else:
        _print_policy(policy)
    return EXIT_OK


def _egress_log(args: argparse.Namespace) -> int:
    with _client(args) as client:
        log = client.sandboxes.get(args.id).egress.log(
            limit=args.limit, blocked=args.blocked, host=args.host, before=args.before
        )
    if args.json:
        _print_json(log)
        return EXIT_OK
    rows = (
        [
            _when(r.ts),
            r.method or "-",
            f"{r.host}:{r.port}" if r.port else (r.host or "-"),
            r.path or "",
            r.status if r.status is not None else "-",
            f"{_size(r.bytes_out)}/{_size(r.bytes_in)}",
            ",".join(r.secrets) or "-",
            f"BLOCKED: {r.reason}" if r.blocked else (r.reason or "ok"),
        ]
        for r in log.records
    )
    table(["TIME (UTC)", "METHOD", "HOST", "PATH", "STATUS", "OUT/IN", "SECRETS", "RESULT"], rows)
    if log.next_before is not None:
        print(f"sandboxd: older records: --before {log.next_before}", file=sys.stderr)
    return EXIT_OK


# --- the parser ------------------------------------------------------------------------------


def _rule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow", action="append", metavar="HOST[:PORT]", help="allow a host (*.example.com: subdomains); repeatable"
    )
    parser.add_argument(
        "--deny", action="append", metavar="HOST[:PORT]", help="deny a host, over any allow; repeatable"
    )
    parser.add_argument(
        "--rules-json", metavar="JSON", help="full rules (methods, path_prefix, name) as a JSON list; - reads stdin"
    )


def add_commands(commands: Commands) -> None:
    secrets = commands.add_parser(
        "secrets",
        help="credentials the egress proxy adds to a sandbox's requests: set, ls, rm",
        description="A sandbox never holds a secret's value: it gets a placeholder, which the egress proxy "
        "replaces on requests to the secret's hosts (or the proxy adds it as a header).",
    )
    secret_commands = secrets.add_subparsers(dest="secrets_command", required=True, metavar="COMMAND")

    put = secret_commands.add_parser(
        "set",
        help="store or replace a secret; the value is read from stdin or a prompt, never from arguments",
        description="The value is read from stdin (`sandboxd secrets set NAME --host H < token.txt`) or typed at a "
        "prompt that does not echo; it is never taken from the command line, which shell history and `ps` show.",
    )
    put.add_argument("name", help="also the environment variable that holds its placeholder in sandboxes")
    put.add_argument(
        "--host", action="append", required=True, metavar="HOST", help="where it may be sent (*.domain ok); repeatable"
    )
    how = put.add_mutually_exclusive_group()
    how.add_argument(
        "--header", metavar="'NAME: TEMPLATE'", help="add this header, e.g. 'Authorization: Bearer {value}'"
    )
    how.add_argument("--basic", metavar="USER", help="add HTTP basic auth as USER with the secret as password")
    how.add_argument("--query", metavar="PARAM", help="set this query parameter to the secret")
    put.add_argument("--allow-in-body", action="store_true", help="replace its placeholder in request bodies too")
    put.add_argument("--allow-in-query", action="store_true", help="replace its placeholder in query strings too")
    _json_flag(put)
    put.set_defaults(func=_secrets_set)

    ls = secret_commands.add_parser("ls", aliases=["list"], help="list secrets (names and hosts; never values)")
    _json_flag(ls)
    ls.set_defaults(func=_secrets_list)

    rm = secret_commands.add_parser("rm", help="delete secrets; sandboxes stop getting them within a second")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.set_defaults(func=_secrets_rm)

    egress = commands.add_parser("egress", help="where sandboxes may connect: policy, default, log")
    egress_commands = egress.add_subparsers(dest="egress_command", required=True, metavar="COMMAND")

    policy = egress_commands.add_parser(
        "policy",
        help="show a sandbox's egress rules, or replace them with --allow/--deny",
        description="Nothing is allowed unless a rule allows it; a matching deny wins. Changes apply within a second.",
    )
    policy.add_argument("id", help="the sandbox")
    _rule_options(policy)
    policy.add_argument("--clear", action="store_true", help="drop its own rules: follow the tenant default again")
    _json_flag(policy)
    policy.set_defaults(func=_egress_policy)

    default = egress_commands.add_parser(
        "default", help="show or replace the tenant's default policy (for sandboxes without rules of their own)"
    )
    _rule_options(default)
    default.add_argument("--tenant", metavar="TENANT_ID", help="another tenant's (admin key)")
    default.add_argument("--clear", action="store_true", help=argparse.SUPPRESS)
    _json_flag(default)
    default.set_defaults(func=_egress_default)

    log = egress_commands.add_parser("log", help="requests a sandbox sent out, newest first")
    log.add_argument("id", help="the sandbox")
    shown = log.add_mutually_exclusive_group()
    shown.add_argument("--blocked", action="store_true", default=None, help="only refused requests")
    shown.add_argument("--allowed", dest="blocked", action="store_false", help="only requests let through")
    log.add_argument("--host", help="only requests to this host")
    log.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    log.add_argument("--before", type=int, metavar="RECORD_ID", help="only records older than this (paging)")
    _json_flag(log)
    log.set_defaults(func=_egress_log)
