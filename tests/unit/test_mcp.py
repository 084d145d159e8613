"""The MCP layer's pure parts: error advice, argument complaints, file pages, the error wrapper, the tool list."""

from __future__ import annotations

import logging

import pytest
from mcp import Client
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from sandboxd import errors
from sandboxd.mcp import build_server
from sandboxd.mcp.command_tools import _page
from sandboxd.mcp.egress_tools import _host_rule
from sandboxd.mcp.errors import (
    describe_error,
    describe_invalid_arguments,
    egress_advice,
    looks_refused,
    next_step,
    refused_hosts,
)
from sandboxd.mcp.file_tools import file_content
from sandboxd.mcp.snapshot_tools import _within_budget
from sandboxd.mcp.toolset import reporting_errors
from sandboxd.models import ExecRequest, FileChange
from sandboxd.runtime.agent_types import FileInfo

ALL_ERRORS = [
    errors.SandboxdError,
    errors.InvalidRequest,
    errors.PayloadTooLarge,
    errors.Unauthenticated,
    errors.Forbidden,
    errors.NotFound,
    errors.Conflict,
    errors.AlreadyExists,
    errors.IsADirectory,
    errors.NotADirectory,
    errors.PermissionDenied,
    errors.ImageNotFound,
    errors.SandboxUnavailable,
    errors.RuntimeFailure,
]


# --- error advice -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_every_error_class_gets_advice_of_its_own(cls: type[errors.SandboxdError]) -> None:
    step = next_step(cls("x"))
    assert step.endswith(".") and len(step) > 30
    if cls is not errors.SandboxdError and cls is not errors.NotFound:
        assert step != next_step(errors.SandboxdError("x")), f"{cls.__name__} falls back to the generic advice"


def test_a_new_subclass_inherits_its_parents_advice() -> None:
    class EgressDenied(errors.Forbidden):
        code = "egress_denied"

    assert next_step(EgressDenied("host example.com is not allowed")) == next_step(errors.Forbidden("x"))


@pytest.mark.parametrize(
    ("message", "points_to"),
    [
        ("no sandbox sbx_aaaaaaaaaaaaaaaaaaaa", "list_sandboxes"),
        ("sandbox sbx_aaaaaaaaaaaaaaaaaaaa does not exist", "list_sandboxes"),
        ("no process p-901478e42195 (it may have been forgotten)", "start_process"),
        ("/nope: No such file or directory", "list_directory"),
        ("/home/sandbox/x: No such file or directory", "list_directory"),
        ("command not found: frobnicate", "command -v"),
        ("no snapshot snp_aaaaaaaaaaaaaaaaaaaa", "list_snapshots"),
        ("no secret GITHUB_TOKEN", "a human"),
    ],
)
def test_not_found_advice_depends_on_what_is_missing(message: str, points_to: str) -> None:
    assert points_to in next_step(errors.NotFound(message))


@pytest.mark.parametrize(
    ("error", "points_to"),
    [
        (errors.Conflict("snapshot snp_x is in use by sandbox sbx_y; delete those first"), "delete_sandbox"),
        (errors.Conflict("sandbox sbx_y was created without egress (no network); create a new one"), "create_sandbox"),
        (errors.InvalidRequest("sandbox sbx_y has no snapshot to compare with; name one"), "snapshot_sandbox"),
        (errors.Conflict("the image of snapshot snp_x is missing from this host"), "list_snapshots"),
    ],
)
def test_advice_within_one_class_follows_the_message(error: errors.SandboxdError, points_to: str) -> None:
    assert points_to in next_step(error)
    assert next_step(error) != next_step(type(error)("something else"))


def test_describe_error_joins_message_and_advice_as_sentences() -> None:
    text = describe_error(errors.PermissionDenied("/etc/shadow: Permission denied"))
    assert text.startswith("/etc/shadow: Permission denied. ")
    assert "uid 1000" in text
    assert describe_error(errors.Conflict("sandbox is stopped.")).startswith("sandbox is stopped. Nothing")
    assert describe_error(errors.SandboxdError("")).startswith("the request failed.")


def test_validation_errors_name_the_fields_without_pydantic_boilerplate() -> None:
    with pytest.raises(ValidationError) as caught:
        ExecRequest(command="ls", argv=["ls"])
    text = describe_invalid_arguments(caught.value)
    assert "give exactly one of 'argv'" in text
    assert "Value error" not in text and "errors.pydantic.dev" not in text
    with pytest.raises(ValidationError) as caught:
        ExecRequest.model_validate({"command": "ls", "timout_s": 3})
    assert "timout_s: unknown argument" in describe_invalid_arguments(caught.value)


# --- the wrapper every tool goes through -------------------------------------------------------


async def test_domain_errors_become_tool_errors_with_advice() -> None:
    async def tool() -> None:
        raise errors.NotFound("no sandbox sbx_aaaaaaaaaaaaaaaaaaaa")

    with pytest.raises(ToolError, match="no sandbox sbx_a+. Call list_sandboxes"):
        await reporting_errors(tool)()


async def test_unexpected_errors_are_logged_and_hidden(caplog: pytest.LogCaptureFixture) -> None:
    async def tool() -> None:
        raise KeyError("secret internals")

    with caplog.at_level(logging.ERROR, logger="sandboxd.mcp"), pytest.raises(ToolError) as caught:
        await reporting_errors(tool)()
    text = str(caught.value)
    assert "secret internals" not in text and "KeyError" not in text
    incident = text.split("incident ")[1].split(")")[0]
    assert any(incident in r.getMessage() and r.exc_info for r in caplog.records)


async def test_wrapper_keeps_the_signature_the_schema_is_built_from() -> None:
    async def tool(sandbox_id: str, path: str = "/workspace") -> str:
        """Doc."""
        return path

    wrapped = reporting_errors(tool)
    assert wrapped.__name__ == "tool" and wrapped.__doc__ == "Doc."
    assert await wrapped("sbx", path="/tmp") == "/tmp"


# --- file pages ----------------------------------------------------------------------------------


def _info(size: int, path: str = "/workspace/f") -> FileInfo:
    return FileInfo(name="f", path=path, type="file", size=size, mode=0o644, mtime=0.0)


def test_a_whole_text_file() -> None:
    page = file_content(_info(6), 0, "héllo".encode(), more=False, encoding="text")
    assert (page.content, page.length, page.truncated, page.next_offset, page.note) == ("héllo", 6, False, None, None)


def test_a_page_that_ends_inside_a_character_holds_it_back() -> None:
    data = "aé".encode()[:2]  # "a" and the first byte of "é"
    page = file_content(_info(3), 0, data, more=True, encoding="text")
    assert (page.content, page.length, page.next_offset, page.truncated) == ("a", 1, 1, True)
    assert "offset=1" in (page.note or "")


def test_binary_read_as_text_has_no_content_and_says_what_to_do() -> None:
    page = file_content(_info(4), 0, b"\x7fELF", more=False, encoding="text")
    assert page.content == "\x7fELF" and not page.binary  # valid UTF-8 is text, even if odd
    page = file_content(_info(4, "/bin/x"), 0, b"\x00\x01\xff\xfe", more=False, encoding="text")
    assert page.binary and page.content is None and page.next_offset is None
    assert "encoding='base64'" in (page.note or "") and "/bin/x" in (page.note or "")


def test_base64_pages_keep_every_byte() -> None:
    page = file_content(_info(10), 4, b"\xff\xfe", more=True, encoding="base64")
    assert (page.content, page.length, page.next_offset, page.binary) == ("//4=", 2, 6, True)


# --- process output pages ------------------------------------------------------------------------


def test_process_pages_compute_the_next_offset() -> None:
    assert _page(b"abcdef", 106, 10) == (b"abcdef", 106)
    assert _page(b"abcdef", 106, 4) == (b"abcd", 104)


# --- the tool list -------------------------------------------------------------------------------


async def test_server_offers_every_tool_with_description_and_hints() -> None:
    async with Client(build_server()) as client:
        tools = (await client.list_tools()).tools
    assert len(tools) == 20
    for tool in tools:
        assert tool.description and "\n    " not in tool.description, tool.name  # dedented
        assert tool.annotations is not None and tool.output_schema is not None


async def test_tools_refuse_a_call_that_did_not_come_through_the_endpoint() -> None:
    async with Client(build_server()) as client:
        result = await client.call_tool("list_sandboxes", {})
    assert result.is_error
    assert "API key" in result.content[0].text and "MCP client's configuration" in result.content[0].text


# --- egress refusals in a command's output -------------------------------------------------------

_CURL_HTTP = (
    "sandboxd egress: blocked GET http://blocked.example/page: no allow rule matches blocked.example:80 "
    "(default deny). Ask the sandbox owner to allow it.\n"
)
_PYTHON_HTTPS = (
    "requests.exceptions.ProxyError: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded "
    "(Caused by ProxyError('Unable to connect to proxy', OSError('Tunnel connection failed: 403 blocked by "
    "sandboxd egress: no allow rule matches pypi.org:443 (default deny)')))"
)


def test_refused_hosts_are_read_from_the_proxys_words() -> None:
    assert refused_hosts(_CURL_HTTP) == ["blocked.example"]
    assert refused_hosts(_PYTHON_HTTPS) == ["pypi.org"]
    assert refused_hosts("sandboxd egress: blocked CONNECT [2001:db8::1]:443: x") == ["2001:db8::1"]
    assert refused_hosts(_CURL_HTTP + _PYTHON_HTTPS + _CURL_HTTP) == ["blocked.example", "pypi.org"]
    assert refused_hosts("HTTP/1.1 403 Forbidden from the upstream itself") == []


def test_a_refusal_that_names_no_host_still_gets_advice() -> None:
    assert looks_refused("curl: (56) CONNECT tunnel failed, response 403")
    assert looks_refused("curl: (22) The requested URL returned error: 403")
    assert not looks_refused("FAILED tests/test_x.py::test_403_page\n4031 passed")
    assert "show_egress_log" in egress_advice([])


def test_egress_advice_names_the_hosts_and_who_can_allow_them() -> None:
    text = egress_advice(["api.example.com"])
    assert text.startswith("Host api.example.com is not allowed") and "ask a human to add it" in text
    many = egress_advice([f"h{i}.example" for i in range(7)])
    assert "h4.example and others are not allowed" in many and "add them" in many


def test_host_rules_from_host_and_port() -> None:
    assert _host_rule("allow", "pypi.org") == {"action": "allow", "host": "pypi.org"}
    assert _host_rule("deny", " pypi.org:443 ") == {"action": "deny", "host": "pypi.org", "port": 443}
    assert _host_rule("allow", "2001:db8::1") == {"action": "allow", "host": "2001:db8::1"}
    assert _host_rule("allow", "[2001:db8::1]:8443") == {"action": "allow", "host": "2001:db8::1", "port": 8443}
    with pytest.raises(errors.InvalidRequest, match="port"):
        _host_rule("allow", "pypi.org:https")


# --- change listings within a model's budget ------------------------------------------------------


def test_diffs_are_kept_in_order_while_they_fit() -> None:
    changes = [
        FileChange(path=f"/w/{i}", change="modified", type="file", diff="x" * size)
        for i, size in enumerate((10, 30, 5))
    ]
    kept, dropped = _within_budget(changes, 20)
    assert [c.diff is not None for c in kept] == [True, False, True]
    assert dropped and [c.path for c in kept] == ["/w/0", "/w/1", "/w/2"]
    assert _within_budget(changes, 100)[1] is False
