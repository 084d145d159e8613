"""Files through MCP: write then read, paging, binary content, directories."""

from __future__ import annotations

import base64

from mcp import Client

from tests.integration.mcp.conftest import fails, ok


async def test_write_then_read_text(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    written = await ok(mcp, "write_file", sandbox_id=sid, path="notes/hello.txt", content="héllo wörld\n")
    assert written == {"path": "/workspace/notes/hello.txt", "size": len("héllo wörld\n".encode()), "mode": "0644"}
    read = await ok(mcp, "read_file", sandbox_id=sid, path="/workspace/notes/hello.txt")
    assert read["content"] == "héllo wörld\n"
    assert (read["truncated"], read["binary"], read["next_offset"], read["note"]) == (False, False, None, None)
    # What the tool wrote is what a command sees.
    assert (await ok(mcp, "run_command", sandbox_id=sid, command="cat notes/hello.txt"))["stdout"] == "héllo wörld\n"


async def test_write_an_executable_script(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    await ok(mcp, "write_file", sandbox_id=sid, path="run.sh", content="#!/bin/sh\necho ran\n", mode="0755")
    assert (await ok(mcp, "run_command", sandbox_id=sid, command="./run.sh"))["stdout"] == "ran\n"


async def test_read_pages_never_split_a_character(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    text = "aé" * 50  # 150 bytes; every é is two
    await ok(mcp, "write_file", sandbox_id=sid, path="pages.txt", content=text)
    pieces, offset = [], 0
    for _ in range(20):
        page = await ok(mcp, "read_file", sandbox_id=sid, path="pages.txt", offset=offset, max_bytes=8)
        pieces.append(page["content"])
        if page["next_offset"] is None:
            break
        assert page["truncated"] is True and "offset=" in page["note"]
        offset = page["next_offset"]
    assert "".join(pieces) == text


async def test_binary_is_flagged_and_readable_as_base64(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    blob = bytes(range(256))
    encoded = base64.b64encode(blob).decode()
    await ok(mcp, "write_file", sandbox_id=sid, path="blob.bin", content=encoded, encoding="base64")
    as_text = await ok(mcp, "read_file", sandbox_id=sid, path="blob.bin")
    assert as_text["binary"] is True and as_text["content"] is None
    assert "encoding='base64'" in as_text["note"]
    as_b64 = await ok(mcp, "read_file", sandbox_id=sid, path="blob.bin", encoding="base64")
    assert base64.b64decode(as_b64["content"]) == blob and as_b64["size"] == 256


async def test_list_directory(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    setup = "mkdir -p tree/sub && printf 12345 > tree/five && ln -s five tree/link"
    await ok(mcp, "run_command", sandbox_id=sid, command=setup)
    listing = await ok(mcp, "list_directory", sandbox_id=sid, path="tree")
    entries = {e["name"]: e for e in listing["entries"]}
    assert set(entries) == {"sub", "five", "link"}
    assert entries["sub"]["type"] == "dir"
    assert (entries["five"]["type"], entries["five"]["size"]) == ("file", 5)
    assert (entries["link"]["type"], entries["link"]["target"]) == ("symlink", "five")
    assert listing["truncated"] is False


async def test_file_errors_say_what_to_do(mcp: Client, sandbox: dict) -> None:
    sid = sandbox["id"]
    assert "list_directory" in await fails(mcp, "read_file", sandbox_id=sid, path="/no/such/file")
    assert "list_directory" in await fails(mcp, "read_file", sandbox_id=sid, path="/workspace")
    assert "read_file" in await fails(mcp, "list_directory", sandbox_id=sid, path="/etc/hostname")
    denied = await fails(mcp, "write_file", sandbox_id=sid, path="/etc/passwd", content="x")
    assert "uid 1000" in denied and "/workspace" in denied
    assert "base64" in await fails(mcp, "write_file", sandbox_id=sid, path="x", content="%%%", encoding="base64")
