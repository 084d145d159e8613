"""Exec through the real supervisor: results, input, limits, timeouts that kill trees, streaming."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import pytest

from sandboxd.errors import InvalidRequest, NotADirectory, NotFound
from sandboxd.runtime.agent_types import ExecChunk, ExecResult
from sandboxd.runtime.supervisor_client import SupervisorClient
from tests.integration.supervisor.conftest import RunningSupervisor
from tests.integration.supervisor.procs import alive_with, kill_all_with, sleep_token, wait_until_gone


async def test_exit_codes_and_separate_streams(client: SupervisorClient) -> None:
    ok = await client.exec(["true"])
    assert (ok.exit_code, ok.stdout, ok.stderr, ok.timed_out, ok.signal) == (0, b"", b"", False, None)

    result = await client.exec(["bash", "-c", "echo out; echo err >&2; exit 7"])
    assert result.exit_code == 7
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"
    assert not result.stdout_truncated and not result.stderr_truncated
    assert result.duration_ms > 0


async def test_a_signal_ending_the_command_is_reported_as_such(client: SupervisorClient) -> None:
    result = await client.exec(["bash", "-c", "kill -TERM $$"])
    assert result.exit_code is None
    assert result.signal == 15
    assert not result.timed_out


async def test_stdin_reaches_the_command_byte_for_byte(client: SupervisorClient) -> None:
    data = bytes(range(256)) * 1000  # larger than a pipe buffer, every byte value
    result = await client.exec(["cat"], stdin=data)
    assert result.stdout == data

    empty = await client.exec(["cat"], stdin=b"")
    assert (empty.exit_code, empty.stdout) == (0, b"")


async def test_no_stdin_means_end_of_file_at_once(client: SupervisorClient) -> None:
    result = await client.exec(["cat"], timeout=5)
    assert (result.exit_code, result.timed_out) == (0, False)


async def test_env_overlays_the_supervisors_and_cwd_is_relative_to_the_root(
    client: SupervisorClient, supervisor: RunningSupervisor
) -> None:
    (supervisor.root / "sub").mkdir()
    result = await client.exec(
        ["bash", "-c", 'echo "$GREETING|$SUPERVISOR_TEST_MARK|$PWD"; test -n "$PATH"'],
        env={"GREETING": "hello there"},
        cwd="sub",
    )
    assert result.exit_code == 0
    assert result.stdout.decode() == f"hello there|1|{supervisor.root / 'sub'}\n"

    default = await client.exec(["pwd"])
    assert default.stdout.decode().strip() == str(supervisor.root)


async def test_a_missing_cwd_is_an_error_and_a_missing_program_exits_127(
    client: SupervisorClient, supervisor: RunningSupervisor
) -> None:
    with pytest.raises(NotFound):
        await client.exec(["true"], cwd="no/such/dir")
    (supervisor.root / "file").write_text("x")
    with pytest.raises(NotADirectory):
        await client.exec(["true"], cwd="file")

    missing = await client.exec(["no-such-program-anywhere"])
    assert missing.exit_code == 127
    assert b"not found" in missing.stderr
    # A PATH with a directory we may not search still means "not found" when it is nowhere.
    blocked = supervisor.root / "blocked"
    blocked.mkdir(mode=0o700)
    blocked.chmod(0o000)
    try:
        hidden = await client.exec(["no-such-program-anywhere"], env={"PATH": f"{blocked}:/usr/bin:/bin"})
        assert hidden.exit_code == 127
    finally:
        blocked.chmod(0o700)

    (supervisor.root / "not-executable").write_text("echo hi\n")
    refused = await client.exec(["./not-executable"])
    assert refused.exit_code == 126


async def test_malformed_requests_are_refused(client: SupervisorClient) -> None:
    with pytest.raises(InvalidRequest):
        await client.exec([])
    with pytest.raises(InvalidRequest):
        await client.exec(["echo", "a\0b"])
    with pytest.raises(InvalidRequest):
        await client.exec(["true"], timeout=-1)
    with pytest.raises(InvalidRequest):
        await client.exec(["true"], env={"A=B": "c"})
    # The connection stays usable after refusals.
    assert (await client.exec(["true"])).exit_code == 0


async def test_output_over_the_limit_is_dropped_not_buffered(
    client: SupervisorClient, supervisor: RunningSupervisor
) -> None:
    result = await client.exec(
        ["bash", "-c", "head -c 200000000 /dev/zero; echo done >&2"], max_output=1000, timeout=60
    )
    assert result.exit_code == 0
    assert result.stdout == b"\0" * 1000
    assert result.stdout_truncated
    assert result.stderr == b"done\n"
    assert not result.stderr_truncated
    # 200 MB went through; the supervisor never held more than a few chunks of it.
    assert supervisor.peak_rss_kib() < 80 * 1024


async def test_a_timeout_kills_the_whole_tree_even_what_left_the_session(client: SupervisorClient) -> None:
    token = sleep_token()
    try:
        started = time.monotonic()
        result = await client.exec(
            ["bash", "-c", f"sleep {token} & setsid sleep {token} & sleep {token}"], timeout=1
        )
        assert result.timed_out
        assert result.exit_code is None
        assert result.signal == 9
        assert time.monotonic() - started < 5
        assert wait_until_gone(token) == []
    finally:
        kill_all_with(token)


async def test_a_timeout_also_catches_daemons_that_double_fork(client: SupervisorClient) -> None:
    token = sleep_token()
    try:
        script = f"(setsid bash -c 'sleep {token} & sleep {token}' &) ; sleep {token}"
        result = await client.exec(["bash", "-c", script], timeout=1)
        assert result.timed_out
        assert wait_until_gone(token) == []
    finally:
        kill_all_with(token)


async def test_children_left_in_the_background_do_not_hold_the_answer(client: SupervisorClient) -> None:
    token = sleep_token()
    try:
        started = time.monotonic()
        result = await client.exec(["bash", "-c", f"sleep {token} & echo started"], timeout=30)
        assert result.stdout == b"started\n"
        assert time.monotonic() - started < 5
        assert alive_with(token), "a background child outlives the exec that started it"
    finally:
        kill_all_with(token)


async def test_concurrent_execs_each_get_their_own_answer(client: SupervisorClient) -> None:
    results = await asyncio.gather(*(client.exec(["bash", "-c", f"echo {i}"]) for i in range(30)))
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(30)]


async def test_stream_forwards_output_before_the_command_ends(
    client: SupervisorClient, supervisor: RunningSupervisor
) -> None:
    # The command only finishes once the test has seen its first line: if chunks were held
    # back until the end, this would run into its timeout instead.
    script = "echo first; while [ ! -e go ]; do sleep 0.01; done; echo second >&2; echo third"
    items: list[ExecChunk | ExecResult] = []
    async with aclosing(client.exec_stream(["bash", "-c", script], timeout=10)) as stream:
        async for item in stream:
            items.append(item)
            if item == ExecChunk("stdout", b"first\n"):
                (supervisor.root / "go").touch()
    result = items[-1]
    assert isinstance(result, ExecResult)
    assert (result.exit_code, result.timed_out, result.stdout) == (0, False, b"")
    chunks = [item for item in items[:-1] if isinstance(item, ExecChunk)]
    assert chunks[0] == ExecChunk("stdout", b"first\n")
    # Two pipes keep each stream's order, not the order between them.
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == b"first\nthird\n"
    assert b"".join(c.data for c in chunks if c.stream == "stderr") == b"second\n"


async def test_stream_reports_a_timeout(client: SupervisorClient) -> None:
    token = sleep_token()
    try:
        items = [item async for item in client.exec_stream(["bash", "-c", f"echo hi; sleep {token}"], timeout=0.5)]
        assert items[0] == ExecChunk("stdout", b"hi\n")
        result = items[-1]
        assert isinstance(result, ExecResult) and result.timed_out
        assert wait_until_gone(token) == []
    finally:
        kill_all_with(token)


async def test_leaving_a_stream_early_kills_the_command(client: SupervisorClient) -> None:
    token = sleep_token()
    try:
        async with aclosing(client.exec_stream(["bash", "-c", f"echo up; sleep {token}"])) as stream:
            async for item in stream:
                assert item == ExecChunk("stdout", b"up\n")
                assert alive_with(token)
                break
        assert wait_until_gone(token) == []
        assert (await client.exec(["true"])).exit_code == 0
    finally:
        kill_all_with(token)


async def test_a_client_that_gives_up_on_an_exec_takes_the_command_with_it(
    supervisor: RunningSupervisor,
) -> None:
    token = sleep_token()
    try:
        async with SupervisorClient(supervisor.socket) as impatient:
            task = asyncio.create_task(impatient.exec(["sleep", token]))
            deadline = time.monotonic() + 5
            while not alive_with(token) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert alive_with(token)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert wait_until_gone(token) == []
    finally:
        kill_all_with(token)


async def test_stream_errors_before_the_first_byte_are_proper_errors(client: SupervisorClient) -> None:
    with pytest.raises(NotFound):
        async for _ in client.exec_stream(["true"], cwd="missing"):
            pass


async def test_stream_forwards_no_more_than_the_limit(client: SupervisorClient) -> None:
    items = [item async for item in client.exec_stream(["head", "-c", "300000", "/dev/zero"], max_output=10)]
    result = items[-1]
    assert isinstance(result, ExecResult) and result.stdout_truncated and not result.stderr_truncated
    assert b"".join(i.data for i in items[:-1] if isinstance(i, ExecChunk)) == b"\0" * 10


async def test_stream_passes_stdin(client: SupervisorClient) -> None:
    items = [item async for item in client.exec_stream(["cat"], stdin=b"piped\n")]
    assert items[0] == ExecChunk("stdout", b"piped\n")
    assert isinstance(items[-1], ExecResult) and items[-1].exit_code == 0
