"""The secrets and egress commands' pure parts: where a secret's value is read from, and argument parsing."""

from __future__ import annotations

import io

import pytest

from sandboxd import cli, cli_egress
from sandboxd.errors import InvalidRequest

SID = "sbx_aaaaaaaaaaaaaaaaaaaa"


def test_a_secret_value_is_stdin_less_one_final_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("line one\nline two\n\n"))
    assert cli_egress.read_secret_value("T") == "line one\nline two\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(InvalidRequest, match="no value for T"):
        cli_egress.read_secret_value("T")


def test_a_secret_value_on_a_terminal_is_prompted_without_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    asked: list[str] = []
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr(cli_egress.getpass, "getpass", lambda prompt: asked.append(prompt) or "typed")
    assert cli_egress.read_secret_value("TOKEN") == "typed"
    assert asked == ["value of TOKEN (not shown): "]


def test_secrets_set_takes_no_value_argument_and_one_injection() -> None:
    args = cli.parse_args(["secrets", "set", "T", "--host", "a.org", "--host", "b.org", "--basic", "me"])
    assert (args.func, args.host, args.basic, args.header) == (cli_egress._secrets_set, ["a.org", "b.org"], "me", None)
    with pytest.raises(SystemExit):
        cli.parse_args(["secrets", "set", "T", "the-value", "--host", "a.org"])
    with pytest.raises(SystemExit):
        cli.parse_args(["secrets", "set", "T", "--host", "a.org", "--basic", "me", "--query", "k"])


def test_egress_commands_parse() -> None:
    args = cli.parse_args(["egress", "policy", SID, "--allow", "a.org", "--allow", "b.org:443", "--deny", "c.org"])
    assert (args.func, args.allow, args.deny) == (cli_egress._egress_policy, ["a.org", "b.org:443"], ["c.org"])
    args = cli.parse_args(["egress", "log", SID, "--allowed"])
    assert args.blocked is False
    assert cli.parse_args(["egress", "log", SID]).blocked is None
    assert cli.parse_args(["egress", "log", SID, "--blocked"]).blocked is True
