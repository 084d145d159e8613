"""The client's boundary: supervisor answers become sandboxd errors and dataclasses.

A MockTransport stands in for the supervisor; the real one is exercised in
tests/integration/supervisor.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from sandboxd import errors
from sandboxd.runtime import supervisor_client
from sandboxd.runtime.agent_types import ExecChunk, ExecResult, FileInfo
from sandboxd.runtime.supervisor_client import SupervisorClient


def client_answering(handler: httpx.MockTransport | None = None, **routes: httpx.Response) -> SupervisorClient:
    def respond(request: httpx.Request) -> httpx.Response:
        return routes[request.url.path.strip("/").replace("/", "_")]

    return SupervisorClient("/nowhere.sock", transport=handler or httpx.MockTransport(respond))


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("not_found", errors.NotFound),
        ("is_a_directory", errors.IsADirectory),
        ("not_a_directory", errors.NotADirectory),
        ("permission_denied", errors.PermissionDenied),
        ("already_exists", errors.AlreadyExists),
        ("conflict", errors.Conflict),
        ("invalid_request", errors.InvalidRequest),
        ("payload_too_large", errors.PayloadTooLarge),
        ("internal", errors.SandboxdError),
    ],
)
async def test_error_answers_become_their_classes(code: str, cls: type[errors.SandboxdError]) -> None:
    answer = httpx.Response(404, json={"error": code, "message": "what went wrong"})
    async with client_answering(files_stat=answer) as client:
        with pytest.raises(cls) as raised:
            await client.stat("x")
    assert type(raised.value) is cls
    assert raised.value.message == "what went wrong"


async def test_an_answer_without_a_body_is_still_an_error() -> None:
    async with client_answering(health=httpx.Response(502, text="<html>bad gateway</html>")) as client:
        with pytest.raises(errors.SandboxdError) as raised:
            await client.health()
    assert "502" in raised.value.message


async def test_a_missing_socket_is_sandbox_unavailable(tmp_path: Path) -> None:
    async with SupervisorClient(tmp_path / "no.sock") as client:
        with pytest.raises(errors.SandboxUnavailable):
            await client.health()
        with pytest.raises(errors.SandboxUnavailable):
            async for _ in client.read_file("x"):
                pass


async def test_a_timeout_is_sandbox_unavailable() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with client_answering(httpx.MockTransport(hang)) as client:
        with pytest.raises(errors.SandboxUnavailable) as raised:
            await client.exec(["true"])
    assert "in time" in raised.value.message


async def test_exec_sends_base64_and_decodes_the_result() -> None:
    seen: dict[str, object] = {}

    def respond(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        seen["read_timeout"] = request.extensions["timeout"]["read"]
        return httpx.Response(
            200,
            json={
                "exit_code": 0, "signal": None, "timed_out": False, "duration_ms": 1.5,
                "stdout": "AAEC", "stderr": "", "stdout_truncated": True, "stderr_truncated": False,
            },
        )

    async with client_answering(httpx.MockTransport(respond)) as client:
        result = await client.exec(["cat"], stdin=b"\xff\x00", timeout=3, env={"A": "b"})
    assert result == ExecResult(
        exit_code=0, stdout=b"\x00\x01\x02", stderr=b"", stdout_truncated=True, stderr_truncated=False,
        duration_ms=1.5, timed_out=False, signal=None,
    )
    assert seen["stdin"] == "/wA=" and seen["argv"] == ["cat"] and seen["env"] == {"A": "b"}
    # The HTTP call waits longer than the command may run, so a timeout comes back as a result.
    assert seen["read_timeout"] == 3 + supervisor_client.TIMEOUT_MARGIN_S


async def test_stream_yields_chunks_then_the_result() -> None:
    lines = [
        {"stream": "stdout", "data": "aGk="},
        {"stream": "stderr", "data": "eW8="},
        {"exit": {"exit_code": 1, "signal": None, "timed_out": False, "duration_ms": 2.0,
                  "stdout_truncated": False, "stderr_truncated": False}},
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    async with client_answering(exec_stream=httpx.Response(200, text=body)) as client:
        items = [item async for item in client.exec_stream(["x"])]
    assert items[:2] == [ExecChunk("stdout", b"hi"), ExecChunk("stderr", b"yo")]
    assert isinstance(items[2], ExecResult) and items[2].exit_code == 1 and items[2].stdout == b""


async def test_a_stream_cut_before_the_exit_is_sandbox_unavailable() -> None:
    body = json.dumps({"stream": "stdout", "data": "aGk="}) + "\n"
    async with client_answering(exec_stream=httpx.Response(200, text=body)) as client:
        with pytest.raises(errors.SandboxUnavailable):
            async for _ in client.exec_stream(["x"]):
                pass


async def test_file_info_modes_are_numbers() -> None:
    answer = {"name": "f", "path": "/workspace/f", "type": "file", "size": 3, "mode": "0640", "mtime": 1.0}
    async with client_answering(files_stat=httpx.Response(200, json=answer)) as client:
        info = await client.stat("f")
    assert info == FileInfo(name="f", path="/workspace/f", type="file", size=3, mode=0o640, mtime=1.0)
    assert info.mode_octal == "0640"


async def test_process_ids_cannot_reach_other_routes() -> None:
    paths: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(404, json={"error": "not_found", "message": "no"})

    async with client_answering(httpx.MockTransport(respond)) as client:
        with pytest.raises(errors.NotFound):
            await client.get_process("../files?path=/etc/passwd")
    assert paths == ["/processes/..%2Ffiles%3Fpath%3D%2Fetc%2Fpasswd"]
