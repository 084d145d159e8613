"""Background processes through the real supervisor: start, output, stdin, signals, wait, forget."""

from __future__ import annotations

import time

import pytest

from sandboxd.errors import Conflict, InvalidRequest, NotFound
from sandboxd.runtime.agent_types import ProcessOutput
from sandboxd.runtime.supervisor_client import SupervisorClient
from tests.integration.supervisor.conftest import RunningSupervisor
from tests.integration.supervisor.procs import alive_with, kill_all_with, sleep_token, wait_until_gone


async def read_until(client: SupervisorClient, process_id: str, wanted: bytes, timeout: float = 5) -> ProcessOutput:
    """Poll the output from the start until stdout holds ``wanted``."""
    deadline = time.monotonic() + timeout
    while True:
        output = await client.read_output(process_id)
        if wanted in output.stdout or time.monotonic() > deadline:
            return output


async def test_start_talk_to_wait_for_and_forget_a_process(client: SupervisorClient) -> None:
    info = await client.start_process(["cat"], name="echoer")
    assert info.state == "running" and info.name == "echoer" and info.argv == ("cat",)
    assert info.pid > 0 and info.exit_code is None

    assert await client.write_stdin(info.id, b"hello\n") == 6
    output = await read_until(client, info.id, b"hello\n")
    assert output.stdout == b"hello\n"
    assert output.state == "running"

    await client.write_stdin(info.id, b"bye\n", eof=True)
    done = await client.wait(info.id, timeout=10)
    assert (done.state, done.exit_code, done.signal) == ("exited", 0, None)
    assert done.ended_at is not None and done.ended_at >= done.started_at
    final = await client.read_output(info.id)
    assert final.stdout == b"hello\nbye\n"
    assert (final.state, final.exit_code) == ("exited", 0)

    listed = await client.list_processes()
    assert [(p.id, p.state, p.exit_code) for p in listed] == [(info.id, "exited", 0)]

    await client.forget(info.id)
    with pytest.raises(NotFound):
        await client.get_process(info.id)
    assert await client.list_processes() == []


async def test_offsets_read_only_what_is_new(client: SupervisorClient) -> None:
    info = await client.start_process(["bash", "-c", "echo one; echo oops >&2; read line; echo two $line"])
    first = await read_until(client, info.id, b"one\n")
    assert first.stdout == b"one\n"
    await client.write_stdin(info.id, b"more\n")
    await client.wait(info.id, timeout=10)
    deadline = time.monotonic() + 5
    while (err := await client.read_output(info.id)).stderr != b"oops\n" and time.monotonic() < deadline:
        pass
    rest = await client.read_output(info.id, stdout_offset=first.stdout_offset, stderr_offset=err.stderr_offset)
    assert rest.stdout == b"two more\n"
    assert rest.stderr == b""
    assert rest.stdout_offset == len(b"one\ntwo more\n")
    assert rest.stdout_dropped == 0


async def test_old_output_is_dropped_beyond_the_ring_and_says_so(client: SupervisorClient) -> None:
    info = await client.start_process(["bash", "-c", "head -c 3145728 /dev/zero; printf end"])
    assert (await client.wait(info.id, timeout=30)).exit_code == 0
    output = await client.read_output(info.id)
    assert output.stdout_dropped == 3145728 + 3 - (1 << 20)
    assert len(output.stdout) == 1 << 20
    assert output.stdout.endswith(b"end")
    assert output.stdout_offset == 3145728 + 3


async def test_term_reaches_the_process_and_wait_reports_the_signal(client: SupervisorClient) -> None:
    token = sleep_token()
    try:
        info = await client.start_process(["sleep", token])
        still = await client.wait(info.id, timeout=0.1)
        assert still.state == "running"
        await client.signal(info.id, "TERM")
        done = await client.wait(info.id, timeout=10)
        assert (done.state, done.exit_code, done.signal) == ("exited", None, 15)
        with pytest.raises(Conflict):
            await client.signal(info.id, "INT")
    finally:
        kill_all_with(token)


async def test_kill_takes_the_whole_tree_including_setsid_children(client: SupervisorClient) -> None:
    token = sleep_token()
    try:
        info = await client.start_process(["bash", "-c", f"setsid sleep {token} & sleep {token} & wait"])
        deadline = time.monotonic() + 5
        while len(alive_with(token)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(alive_with(token)) == 3  # bash, whose command line names the token too, and two sleeps
        with pytest.raises(Conflict):
            await client.forget(info.id)
        await client.signal(info.id, "KILL")
        done = await client.wait(info.id, timeout=10)
        assert (done.state, done.signal) == ("exited", 9)
        assert wait_until_gone(token) == []
    finally:
        kill_all_with(token)


async def test_kill_after_exit_still_sweeps_what_was_left_behind(client: SupervisorClient) -> None:
    token = sleep_token()
    try:
        info = await client.start_process(["bash", "-c", f"setsid sleep {token} & echo left"])
        assert (await client.wait(info.id, timeout=10)).exit_code == 0
        assert alive_with(token)
        await client.signal(info.id, 9)
        assert wait_until_gone(token) == []
    finally:
        kill_all_with(token)


async def test_a_process_outlives_the_connection_that_started_it(supervisor: RunningSupervisor) -> None:
    token = sleep_token()
    try:
        async with SupervisorClient(supervisor.socket) as first:
            info = await first.start_process(["sleep", token])
        async with SupervisorClient(supervisor.socket) as second:
            assert (await second.get_process(info.id)).state == "running"
            assert alive_with(token)
            await second.signal(info.id, "KILL")
            assert (await second.wait(info.id, timeout=10)).state == "exited"
    finally:
        kill_all_with(token)


async def test_stdin_after_eof_is_a_conflict(client: SupervisorClient) -> None:
    info = await client.start_process(["cat"])
    await client.write_stdin(info.id, b"", eof=True)
    with pytest.raises(Conflict):
        await client.write_stdin(info.id, b"late")
    assert (await client.wait(info.id, timeout=10)).exit_code == 0


async def test_bad_requests_about_processes(client: SupervisorClient) -> None:
    with pytest.raises(NotFound):
        await client.get_process("p-000000000000")
    with pytest.raises(NotFound):
        await client.read_output("../files")
    with pytest.raises(NotFound):
        await client.start_process(["no-such-program-anywhere"])
    with pytest.raises(NotFound):
        await client.start_process(["true"], cwd="missing")
    info = await client.start_process(["true"])
    with pytest.raises(InvalidRequest):
        await client.signal(info.id, "NOPE")
    with pytest.raises(InvalidRequest):
        await client.wait(info.id, timeout=-1)
    assert (await client.wait(info.id, timeout=10)).exit_code == 0


async def test_stdin_larger_than_a_pipe_buffer_arrives_whole(client: SupervisorClient) -> None:
    info = await client.start_process(["wc", "-c"])
    data = bytes(range(256)) * 12288  # 3 MiB
    assert await client.write_stdin(info.id, data, eof=True) == len(data)
    assert (await client.wait(info.id, timeout=10)).exit_code == 0
    assert (await client.read_output(info.id)).stdout.strip() == str(len(data)).encode()
