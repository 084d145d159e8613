"""Tools for files in a sandbox: read, write, list.

Contents travel inside JSON-RPC messages and end up in a model's context, so reads
come in pages (``offset`` and ``max_bytes``) and binary data is only sent when asked
for as base64; bulk transfers belong to the HTTP API's streaming endpoints.
"""

from __future__ import annotations

import base64
import binascii
import codecs
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from sandboxd.errors import InvalidRequest
from sandboxd.mcp.sandbox_tools import SandboxId
from sandboxd.mcp.toolset import ToolSet, caller_of
from sandboxd.runtime.agent_types import FileInfo

tools = ToolSet()

DEFAULT_READ_BYTES: Final = 64 * 1024
MAX_READ_BYTES: Final = 1024 * 1024
MAX_ENTRIES: Final = 1000

FilePath = Annotated[str, Field(min_length=1, max_length=4096, description="Absolute, or relative to /workspace.")]
Encoding = Literal["text", "base64"]


class FileContent(BaseModel):
    path: str
    size: int = Field(description="The whole file's size in bytes.")
    offset: int = Field(description="Where in the file 'content' starts.")
    length: int = Field(description="How many bytes of the file 'content' holds.")
    content: str | None = Field(description="The bytes read, as text or base64; null for a binary file read as text.")
    encoding: Encoding
    truncated: bool = Field(description="True when the file goes on past this part: read on from next_offset.")
    next_offset: int | None = Field(description="Pass as offset to read the next part; null at the end of the file.")
    binary: bool = Field(description="True when the bytes are not UTF-8 text.")
    note: str | None = Field(None, description="What to do when the content is cut or not shown.")


class Written(BaseModel):
    path: str = Field(description="The absolute path written.")
    size: int
    mode: str


class Entry(BaseModel):
    name: str
    type: Literal["file", "dir", "symlink", "other"]
    size: int
    mode: str = Field(description="Permission bits in octal, e.g. 0644.")
    modified: datetime
    target: str | None = Field(None, description="Where a symlink points.")


class Listing(BaseModel):
    path: str
    entries: list[Entry]
    truncated: bool = Field(
        description=f"True when the directory has more than {MAX_ENTRIES} entries and the rest were left out."
    )


@tools.tool(read_only=True, idempotent=True)
async def read_file(
    ctx: Context,
    sandbox_id: SandboxId,
    path: FilePath,
    offset: Annotated[int, Field(ge=0, description="Byte offset to start at; use next_offset to page on.")] = 0,
    max_bytes: Annotated[
        int,
        Field(gt=0, le=MAX_READ_BYTES, description=f"Most bytes to return. Default {DEFAULT_READ_BYTES}."),
    ] = DEFAULT_READ_BYTES,
    encoding: Annotated[
        Encoding,
        Field(description="'text' for UTF-8 text (default); 'base64' for binary files."),
    ] = "text",
) -> FileContent:
    """Read a file in a sandbox, as UTF-8 text (default) or base64.

    Returns at most max_bytes from offset; when the file is longer, truncated is true and
    next_offset says where to continue. A file that is not UTF-8 text read as 'text' comes
    back with binary=true and no content: read it with encoding='base64', or inspect it with
    run_command (file, xxd, head -c). For a directory, use list_directory.
    """
    caller = caller_of(ctx)
    info, chunks = await caller.daemon.files.read(caller.principal, sandbox_id, path)
    async with aclosing(chunks):
        data, more = await _read_range(chunks, offset, max_bytes)
    return file_content(info, offset, data, more, encoding)


@tools.tool(destructive=True, idempotent=True)
async def write_file(
    ctx: Context,
    sandbox_id: SandboxId,
    path: FilePath,
    content: Annotated[str, Field(description="The whole new content of the file.")],
    encoding: Annotated[
        Encoding,
        Field(description="'text' to write content as UTF-8 (default); 'base64' when content is base64 of bytes."),
    ] = "text",
    mode: Annotated[
        str | None,
        Field(pattern=r"^0?[0-7]{3,4}$", description="Permissions in octal, e.g. '0755' for a script. Default 0644."),
    ] = None,
) -> Written:
    """Create or replace a file in a sandbox with the given content; missing parent directories are created.

    Replaces the whole file (there is no append: to add to a file, use run_command, e.g.
    with >>). Suited to source files, configs and scripts up to about 1 MB per call; for
    bigger or generated data, create it inside the sandbox with run_command.
    """
    caller = caller_of(ctx)
    if encoding == "base64":
        try:
            data = base64.b64decode(content, validate=True)
        except binascii.Error:
            raise InvalidRequest("content is not valid base64 (or pass encoding='text')") from None
    else:
        data = content.encode()
    info = await caller.daemon.files.write(caller.principal, sandbox_id, path, _one_chunk(data), mode)
    return Written(path=info.path, size=info.size, mode=info.mode_octal)


@tools.tool(read_only=True, idempotent=True)
async def list_directory(
    ctx: Context,
    sandbox_id: SandboxId,
    path: Annotated[
        str, Field(min_length=1, max_length=4096, description="The directory. Default: /workspace.")
    ] = "/workspace",
) -> Listing:
    """List a directory in a sandbox: each entry's name, type (file, dir, symlink), size and mode.

    Not recursive: call it again on a subdirectory, or use run_command with find or tree for
    a whole tree. At most 1000 entries are returned.
    """
    caller = caller_of(ctx)
    infos = await caller.daemon.files.list(caller.principal, sandbox_id, path)
    entries = [_entry(i) for i in sorted(infos, key=lambda i: i.name)[:MAX_ENTRIES]]
    return Listing(path=path, entries=entries, truncated=len(infos) > MAX_ENTRIES)


def file_content(info: FileInfo, offset: int, data: bytes, more: bool, encoding: Encoding) -> FileContent:
    """Shape one page of a file for a model: text cut on a character boundary, or base64, or a note."""
    at_end = not more
    if encoding == "base64":
        text: str | None = base64.b64encode(data).decode()
        used, binary = len(data), not _is_text(data)
    else:
        text, used = _utf8_prefix(data, final=at_end)
        binary = text is None
    withheld = binary and encoding == "text"
    truncated = not withheld and (not at_end or used < len(data))
    note = None
    if withheld:
        note = (
            f"{info.path} is binary ({info.size} bytes), so it is not shown as text: call read_file with "
            "encoding='base64', or inspect it with run_command (file, xxd, head -c)."
        )
    elif truncated:
        note = f"Only part of the file is shown; call read_file with offset={offset + used} to read on."
    return FileContent(
        path=info.path,
        size=info.size,
        offset=offset,
        length=used,
        content=text,
        encoding=encoding,
        truncated=truncated,
        next_offset=offset + used if truncated else None,
        binary=binary,
        note=note,
    )


def _utf8_prefix(data: bytes, *, final: bool) -> tuple[str | None, int]:
    """The text of ``data`` and how many bytes it used; (None, 0) when it is not UTF-8 text.

    A character cut at the end of a page is held back for the next page rather than mangled.
    """
    if b"\x00" in data:
        return None, 0
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        text = decoder.decode(data, final=final)
    except UnicodeDecodeError:
        return None, 0
    pending = len(decoder.getstate()[0])
    return text, len(data) - pending


def _is_text(data: bytes) -> bool:
    return _utf8_prefix(data, final=False)[0] is not None


async def _read_range(chunks: AsyncIterator[bytes], offset: int, max_bytes: int) -> tuple[bytes, bool]:
    """Bytes ``offset`` to ``offset + max_bytes`` of the stream, and whether more follow; stops reading early."""
    kept = bytearray()
    skipped = 0
    async for chunk in chunks:
        if skipped < offset:
            take_from = min(offset - skipped, len(chunk))
            skipped += take_from
            chunk = chunk[take_from:]
        kept += chunk
        if len(kept) > max_bytes:
            return bytes(kept[:max_bytes]), True
    return bytes(kept), False


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _entry(info: FileInfo) -> Entry:
    return Entry(
        name=info.name,
        type=info.type,
        size=info.size,
        mode=info.mode_octal,
        modified=datetime.fromtimestamp(info.mtime, UTC),
        target=info.target,
    )
