"""The snapshot commands' pure parts: argument parsing, the lifecycle options, the progress bar."""

from __future__ import annotations

import io

import pytest

from sandboxd import cli, cli_snapshots

SID = "sbx_aaaaaaaaaaaaaaaaaaaa"
SNP = "snp_bbbbbbbbbbbbbbbbbbbb"


def test_snapshot_commands_parse() -> None:
    args = cli.parse_args(["snapshot", "create", SID, "--name", "x", "--label", "a=b"])
    assert (args.func, args.id, args.name, args.label) == (cli_snapshots._snapshot_create, SID, "x", ["a=b"])
    args = cli.parse_args(["fork", SNP, "-n", "3"])
    assert (args.func, args.source, args.n) == (cli_snapshots._fork, SNP, 3)
    args = cli.parse_args(["changes", SNP, "snp_cccccccccccccccccccc", "--diff"])
    assert (args.source, args.to, args.diff, args.since) == (SNP, "snp_cccccccccccccccccccc", True, None)
    assert cli.parse_args(["resume", SID]).func is cli.parse_args(["wake", SID]).func
    assert cli.parse_args(["snapshot", "rm", SNP, "--force"]).force is True


def test_lifecycle_options_not_given_are_absent_and_none_clears() -> None:
    args = cli.parse_args(["lifecycle", SID])
    assert not {"idle_timeout", "idle_action", "max_lifetime", "on_wake"} & set(vars(args))
    args = cli.parse_args(["lifecycle", SID, "--idle-timeout", "none", "--max-lifetime", "60"])
    assert (args.idle_timeout, args.max_lifetime) == (None, 60)
    with pytest.raises(SystemExit):
        cli.parse_args(["lifecycle", SID, "--idle-timeout", "soon"])


def test_progress_bar_with_a_known_total() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown = Terminal()
    progress = cli.Progress("import", shown, total=4 * 1024 * 1024)
    progress(1024 * 1024)
    progress.done()
    text = shown.getvalue()
    assert "[######" in text and " 25%" in text and "1.0 MiB / 4.0 MiB" in text
    assert text.endswith("done\n")
