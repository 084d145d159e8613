"""Failures come back as tool errors with a next step, never as protocol errors or tracebacks."""

from __future__ import annotations

from mcp import Client

from tests.integration.mcp.conftest import fails


async def test_unknown_sandbox_points_to_list_sandboxes(mcp: Client) -> None:
    text = await fails(mcp, "run_command", sandbox_id="sbx_aaaaaaaaaaaaaaaaaaaa", command="true")
    assert "no sandbox sbx_aaaaaaaaaaaaaaaaaaaa" in text
    assert "call list_sandboxes" in text.lower()


async def test_malformed_sandbox_id_is_an_argument_error(mcp: Client) -> None:
    text = await fails(mcp, "list_directory", sandbox_id="not-an-id")
    assert "sandbox id" in text and "call the tool again" in text
    assert "Traceback" not in text


async def test_schema_violations_are_tool_errors_that_name_the_field(mcp: Client) -> None:
    text = await fails(mcp, "read_file", sandbox_id="sbx_aaaaaaaaaaaaaaaaaaaa", path="x", max_bytes=-1)
    assert "max_bytes" in text
    text = await fails(mcp, "run_command", command="true")
    assert "sandbox_id" in text


async def test_unknown_image_suggests_the_default(mcp: Client) -> None:
    text = await fails(mcp, "create_sandbox", image="no-such-image:never")
    assert "no-such-image" in text and "Leave 'image' out" in text


async def test_limits_over_the_server_maximum_name_the_range(mcp: Client) -> None:
    text = await fails(mcp, "create_sandbox", memory_mb=10_000_000)
    assert "memory_mb" in text and "out of range" in text
