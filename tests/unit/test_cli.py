"""The CLI's pure parts: argument parsing, tables, exit codes; and main() against a fake daemon."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from sandboxd import cli
from sandboxd.client import Client
from sandboxd.errors import (
    Conflict,
    Forbidden,
    ImageNotFound,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    SandboxdError,
    Unauthenticated,
)

SID = "sbx_aaaaaaaaaaaaaaaaaaaa"


def test_exec_keeps_everything_after_the_double_dash() -> None:
    args = cli.parse_args(["exec", "--timeout", "3", SID, "--", "sh", "-c", "exit 3", "--", "-x"])
    assert (args.id, args.timeout, args.argv, args.command) == (SID, 3.0, ["sh", "-c", "exit 3", "--", "-x"], None)
    args = cli.parse_args(["sandbox", "exec", SID, "--env", "A=1", "--", "ls", "-la"])
    assert (args.argv, args.env) == (["ls", "-la"], ["A=1"])
    args = cli.parse_args(["exec", SID, "-c", "echo hi"])
    assert (args.command, args.argv) == ("echo hi", [])


def test_serve_and_audit_verify_parse_as_before() -> None:
    args = cli.parse_args(["serve", "--port", "9000", "--data-dir", "/tmp/d"])
    assert (args.func, args.port, args.data_dir) == (cli._serve, 9000, "/tmp/d")
    args = cli.parse_args(["audit", "verify", "--data-dir", "/tmp/d"])
    assert (args.func, args.remote) == (cli._audit_verify, False)
    args = cli.parse_args(["audit", "--sandbox", SID, "--limit", "5"])
    assert (args.func, args.sandbox, args.limit) == (cli._audit_query, SID, 5)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(["sandbox", "frobnicate"])
    assert exited.value.code == cli.EXIT_USAGE
    assert cli.main(["exec", SID]) == cli.EXIT_USAGE
    assert "give a command" in capsys.readouterr().err
    assert cli.main(["cp", "a", "b"]) == cli.EXIT_USAGE


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("x"), 3),
        (ImageNotFound("x"), 3),
        (Unauthenticated("x"), 4),
        (Forbidden("x"), 4),
        (InvalidRequest("x"), 2),
        (PayloadTooLarge("x"), 2),
        (Conflict("x"), 1),
        (SandboxdError("x"), 1),
    ],
)
def test_exit_codes(error: SandboxdError, code: int) -> None:
    assert cli.exit_code_for(error) == code


def test_remote_specs() -> None:
    assert cli._remote(f"{SID}:/workspace/a") == (SID, "/workspace/a")
    assert cli._remote(f"{SID}:") == (SID, "/workspace")
    assert cli._remote("./local:with:colons") is None
    assert cli._remote("C:/not/a/sandbox") is None


def test_table_aligns_columns(capsys: pytest.CaptureFixture[str]) -> None:
    cli.table(["ID", "STATE", "LABELS"], [["sbx_1", "running", "a=1"], ["sbx_22222", "paused", None]])
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["ID         STATE    LABELS", "sbx_1      running  a=1", "sbx_22222  paused"]


def _fake_client(monkeypatch: pytest.MonkeyPatch, handler) -> None:
    monkeypatch.setattr(
        cli, "_client", lambda args: Client("http://sbx.test", "key", transport=httpx.MockTransport(handler))
    )


def test_main_prints_the_daemons_message_and_maps_the_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_client(
        monkeypatch, lambda r: httpx.Response(404, json={"error": "not_found", "message": f"no sandbox {SID}"})
    )
    assert cli.main(["info", SID]) == cli.EXIT_NOT_FOUND
    assert capsys.readouterr().err == f"sandboxd: no sandbox {SID}\n"


def test_unauthenticated_without_a_key_says_where_keys_come_from(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SANDBOXD_API_KEY", raising=False)
    _fake_client(monkeypatch, lambda r: httpx.Response(401, json={"error": "unauthenticated", "message": "no key"}))
    assert cli.main(["ls"]) == cli.EXIT_AUTH
    assert "set SANDBOXD_API_KEY" in capsys.readouterr().err


def test_json_listing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    tenants = [{"id": "tnt_1", "name": "default", "created_at": 0.0, "future_field": 1}]
    _fake_client(monkeypatch, lambda r: httpx.Response(200, json={"tenants": tenants}))
    assert cli.main(["tenants", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == tenants


class _Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_only_on_a_terminal() -> None:
    quiet = _Terminal(tty=False)
    progress = cli.Progress("up", quiet)
    progress(1024)
    progress.done()
    assert quiet.getvalue() == ""
    loud = _Terminal(tty=True)
    progress = cli.Progress("up", loud)
    progress(3 * 1024 * 1024)
    progress.done()
    assert "up: 3.0 MiB" in loud.getvalue() and loud.getvalue().endswith("done\n")
