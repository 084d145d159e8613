"""Commands in a sandbox: one-shot exec, streamed exec (Server-Sent Events), background processes.

The stream is SSE because any HTTP client can read it and it passes proxies:
events ``stdout`` and ``stderr`` carry ``{"data": text}`` (or base64 with
``encoding=base64``) as the command writes, and one final ``exit`` event carries
the result without the output.
"""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from sandboxd.api.deps import CurrentPrincipal, DaemonDep
from sandboxd.api.serialize import to_json
from sandboxd.errors import SandboxdError
from sandboxd.models import ExecOut, ExecRequest, SignalRequest, StartProcess
from sandboxd.runtime.agent_types import ExecChunk, ExecResult

router = APIRouter(prefix="/v1/sandboxes/{sandbox_id}", tags=["exec"])


def _encode(data: bytes, encoding: str) -> str:
    return base64.b64encode(data).decode() if encoding == "base64" else data.decode("utf-8", "replace")


def exec_out(result: ExecResult, encoding: str) -> ExecOut:
    return ExecOut(
        exit_code=result.exit_code,
        stdout=_encode(result.stdout, encoding),
        stderr=_encode(result.stderr, encoding),
        encoding=encoding,  # type: ignore[arg-type]
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        duration_ms=result.duration_ms,
        timed_out=result.timed_out,
        signal=result.signal,
    )


@router.post("/exec")
async def exec_command(sandbox_id: str, body: ExecRequest, principal: CurrentPrincipal, daemon: DaemonDep) -> ExecOut:
    return exec_out(await daemon.exec.run(principal, sandbox_id, body), body.encoding)


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


async def _events(stream: AsyncIterator[ExecChunk | ExecResult], encoding: str) -> AsyncIterator[bytes]:
    # Text mode decodes incrementally so a UTF-8 character split across chunks survives.
    decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}
    try:
        async for item in stream:
            if isinstance(item, ExecChunk):
                if encoding == "base64":
                    text = base64.b64encode(item.data).decode()
                else:
                    text = decoders[item.stream].decode(item.data)
                if text:
                    yield _sse(item.stream, {"data": text})
            else:
                for name, decoder in decoders.items():
                    tail = decoder.decode(b"", final=True)
                    if tail and encoding != "base64":
                        yield _sse(name, {"data": tail})
                result = exec_out(item, encoding).model_dump(exclude={"stdout", "stderr"})
                yield _sse("exit", result)
    except SandboxdError as exc:
        yield _sse("error", exc.to_dict())


@router.post("/exec/stream", response_class=StreamingResponse)
async def exec_stream(
    sandbox_id: str, body: ExecRequest, principal: CurrentPrincipal, daemon: DaemonDep
) -> StreamingResponse:
    stream = await daemon.exec.stream(principal, sandbox_id, body)
    return StreamingResponse(
        _events(stream, body.encoding),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/processes", status_code=status.HTTP_201_CREATED)
async def start_process(sandbox_id: str, body: StartProcess, principal: CurrentPrincipal, daemon: DaemonDep) -> Any:
    return to_json(await daemon.exec.start_process(principal, sandbox_id, body))


@router.get("/processes")
async def list_processes(sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> Any:
    return {"processes": to_json(await daemon.exec.list_processes(principal, sandbox_id))}


@router.get("/processes/{process_id}")
async def get_process(sandbox_id: str, process_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> Any:
    return to_json(await daemon.exec.get_process(principal, sandbox_id, process_id))


@router.get("/processes/{process_id}/output")
async def process_output(
    sandbox_id: str,
    process_id: str,
    principal: CurrentPrincipal,
    daemon: DaemonDep,
    stdout_offset: Annotated[int, Query(ge=0)] = 0,
    stderr_offset: Annotated[int, Query(ge=0)] = 0,
    encoding: Annotated[str, Query(pattern="^(utf-8|base64)$")] = "utf-8",
) -> Any:
    output = await daemon.exec.read_output(principal, sandbox_id, process_id, stdout_offset, stderr_offset)
    body = to_json(output)
    for name in ("stdout", "stderr"):
        raw = getattr(output, name, None)
        if isinstance(raw, bytes):
            body[name] = _encode(raw, encoding)
    body["encoding"] = encoding
    return body


@router.post("/processes/{process_id}/stdin", status_code=status.HTTP_204_NO_CONTENT)
async def write_stdin(
    sandbox_id: str,
    process_id: str,
    request: Request,
    principal: CurrentPrincipal,
    daemon: DaemonDep,
    eof: bool = False,
) -> Response:
    data = await request.body()
    await daemon.exec.write_stdin(principal, sandbox_id, process_id, data, eof)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/processes/{process_id}/signal")
async def signal_process(
    sandbox_id: str, process_id: str, body: SignalRequest, principal: CurrentPrincipal, daemon: DaemonDep
) -> Any:
    return to_json(await daemon.exec.signal(principal, sandbox_id, process_id, body.signal))


@router.post("/processes/{process_id}/wait")
async def wait_process(
    sandbox_id: str,
    process_id: str,
    principal: CurrentPrincipal,
    daemon: DaemonDep,
    timeout: Annotated[float, Query(ge=0, le=3600)] = 30.0,
) -> Any:
    return to_json(await daemon.exec.wait(principal, sandbox_id, process_id, timeout))


@router.delete("/processes/{process_id}", status_code=status.HTTP_204_NO_CONTENT)
async def forget_process(sandbox_id: str, process_id: str, principal: CurrentPrincipal, daemon: DaemonDep) -> Response:
    await daemon.exec.forget(principal, sandbox_id, process_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
