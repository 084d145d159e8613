"""Files and directories in a sandbox. Contents are raw bytes, streamed both ways."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from sandboxd.api.deps import CurrentPrincipal, DaemonDep
from sandboxd.api.serialize import to_json
from sandboxd.models import MkdirRequest, MoveRequest

router = APIRouter(prefix="/v1/sandboxes/{sandbox_id}", tags=["files"])

PathQuery = Annotated[str, Query(description="Absolute, or relative to /workspace.")]

# Upload endpoints stream their bodies and are exempt from the JSON body limit.
STREAMED_SUFFIXES = ("/files/content", "/archive")


@router.get("/files/content", response_class=StreamingResponse)
async def read_file(sandbox_id: str, path: PathQuery, principal: CurrentPrincipal, daemon: DaemonDep) -> StreamingResponse:
    info, chunks = await daemon.files.read(principal, sandbox_id, path)
    # No Content-Length: the file may change while it streams; the size at open is a hint.
    return StreamingResponse(chunks, media_type="application/octet-stream", headers={"X-File-Size": str(info.size)})


@router.put("/files/content")
async def write_file(
    sandbox_id: str,
    path: PathQuery,
    request: Request,
    principal: CurrentPrincipal,
    daemon: DaemonDep,
    mode: Annotated[str | None, Query(description="Octal permissions, e.g. 0755; default 0644.")] = None,
) -> Any:
    return to_json(await daemon.files.write(principal, sandbox_id, path, request.stream(), mode))


@router.get("/files/stat")
async def stat_path(sandbox_id: str, path: PathQuery, principal: CurrentPrincipal, daemon: DaemonDep) -> Any:
    return to_json(await daemon.files.stat(principal, sandbox_id, path))


@router.get("/files")
async def list_directory(
    sandbox_id: str, principal: CurrentPrincipal, daemon: DaemonDep, path: PathQuery = "/workspace"
) -> Any:
    entries = await daemon.files.list(principal, sandbox_id, path)
    return {"path": path, "entries": [to_json(e) for e in entries]}


@router.post("/files/mkdir", status_code=status.HTTP_201_CREATED)
async def make_directory(sandbox_id: str, body: MkdirRequest, principal: CurrentPrincipal, daemon: DaemonDep) -> Any:
    return to_json(await daemon.files.mkdir(principal, sandbox_id, body.path, body.parents, body.mode))


@router.delete("/files", status_code=status.HTTP_204_NO_CONTENT)
async def delete_path(
    sandbox_id: str, path: PathQuery, principal: CurrentPrincipal, daemon: DaemonDep, recursive: bool = False
) -> Response:
    await daemon.files.delete(principal, sandbox_id, path, recursive)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/files/move")
async def move_path(sandbox_id: str, body: MoveRequest, principal: CurrentPrincipal, daemon: DaemonDep) -> Any:
    return to_json(await daemon.files.move(principal, sandbox_id, body.src, body.dst, body.overwrite))


@router.get("/archive", response_class=StreamingResponse)
async def download_archive(
    sandbox_id: str, path: PathQuery, principal: CurrentPrincipal, daemon: DaemonDep
) -> StreamingResponse:
    chunks = await daemon.files.download_archive(principal, sandbox_id, path)
    return StreamingResponse(chunks, media_type="application/x-tar")


@router.put("/archive")
async def upload_archive(
    sandbox_id: str, path: PathQuery, request: Request, principal: CurrentPrincipal, daemon: DaemonDep
) -> Any:
    extracted = await daemon.files.upload_archive(principal, sandbox_id, path, request.stream())
    return {"path": path, "extracted": extracted}
