"""The supervisor's pure parts: limits, rings, parsing, error mapping, archive member checks."""

from __future__ import annotations

import ast
import base64
import errno
import io
import os
import signal
import sys
import tarfile
from pathlib import Path

import pytest

from sandboxd.supervisor import SUPERVISOR_PATH, server
from sandboxd.supervisor.server import ApiError


def test_the_exported_path_is_the_server_module() -> None:
    assert SUPERVISOR_PATH == Path(server.__file__)
    assert SUPERVISOR_PATH.is_file()


def test_the_server_imports_only_the_standard_library() -> None:
    # It is copied alone into images that have nothing but a Debian python3.
    tree = ast.parse(SUPERVISOR_PATH.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported
    assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names) | {"__future__"}


def test_capture_keeps_the_first_bytes_and_flags_the_rest() -> None:
    capture = server.Capture(5)
    assert capture.add(b"abc") == b"abc"
    assert not capture.truncated
    assert capture.add(b"defgh") == b"de"
    assert capture.add(b"ij") == b""
    assert (bytes(capture.data), capture.truncated) == (b"abcde", True)


def test_ring_reads_from_offsets_and_counts_what_it_dropped() -> None:
    ring = server.OutputRing(capacity=4)
    ring.append(b"ab")
    assert ring.read(0) == (b"ab", 2, 0)
    ring.append(b"cdef")  # keeps "cdef", drops "ab"
    assert ring.read(0) == (b"cdef", 6, 2)
    assert ring.read(2) == (b"cdef", 6, 0)
    assert ring.read(5) == (b"f", 6, 0)
    assert ring.read(6) == (b"", 6, 0)
    assert ring.read(99) == (b"", 6, 0)  # never past the end


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("TERM", signal.SIGTERM), ("sigkill", signal.SIGKILL), ("SIGINT", signal.SIGINT), (1, signal.SIGHUP)],
)
def test_signals_by_name_or_number(raw: str | int, expected: int) -> None:
    assert server.parse_signal(raw) == expected


@pytest.mark.parametrize("raw", ["NOPE", 0, 999, True, None, 1.5])
def test_unknown_signals_are_refused(raw: object) -> None:
    with pytest.raises(ApiError) as refused:
        server.parse_signal(raw)
    assert refused.value.code == "invalid_request"


def test_modes() -> None:
    assert server.parse_mode("0644", 0) == 0o644
    assert server.parse_mode("755", 0) == 0o755
    assert server.parse_mode(None, 0o600) == 0o600
    for bad in ("rwx", "99999", "-1"):
        with pytest.raises(ApiError):
            server.parse_mode(bad, 0)


def test_paths_resolve_against_the_root_and_refuse_nul() -> None:
    assert server.resolve_path("/workspace", "a/b/../c") == "/workspace/a/c"
    assert server.resolve_path("/workspace", "/etc/hosts") == "/etc/hosts"
    for bad in ("", "a\0b", None, 3):
        with pytest.raises(ApiError) as refused:
            server.resolve_path("/workspace", bad)
        assert refused.value.code == "invalid_request"


@pytest.mark.parametrize(
    ("number", "code", "status"),
    [
        (errno.ENOENT, "not_found", 404),
        (errno.EISDIR, "is_a_directory", 409),
        (errno.ENOTDIR, "not_a_directory", 409),
        (errno.EACCES, "permission_denied", 403),
        (errno.EPERM, "permission_denied", 403),
        (errno.EEXIST, "already_exists", 409),
        (errno.ENOTEMPTY, "conflict", 409),
        (errno.EIO, "internal", 500),
    ],
)
def test_os_errors_map_to_wire_codes(number: int, code: str, status: int) -> None:
    error = server.error_from_os(OSError(number, os.strerror(number), "/workspace/x"))
    assert (error.code, error.status) == (code, status)
    assert "/workspace/x" in error.message


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    "bad",
    [
        member("../evil"),
        member("a/../../evil"),
        member("/etc/passwd"),
        member("s", tarfile.SYMTYPE, "/etc"),
        member("s", tarfile.SYMTYPE, "../.."),
        member("a/s", tarfile.SYMTYPE, "../../x"),
        member("h", tarfile.LNKTYPE, "../x"),
        member("dev", tarfile.CHRTYPE),
        member("pipe", tarfile.FIFOTYPE),
    ],
)
def test_members_that_escape_or_make_devices_are_refused(tmp_path: Path, bad: tarfile.TarInfo) -> None:
    with pytest.raises(ApiError) as refused:
        server.check_member(bad, str(tmp_path))
    assert refused.value.code == "invalid_request"


@pytest.mark.parametrize(
    "good",
    [
        member("a/b.txt"),
        member("./c"),
        member("dir", tarfile.DIRTYPE),
        member("a/s", tarfile.SYMTYPE, "../b"),
        member("h", tarfile.LNKTYPE, "a/b.txt"),
    ],
)
def test_members_inside_pass(tmp_path: Path, good: tarfile.TarInfo) -> None:
    server.check_member(good, str(tmp_path))


def test_a_member_through_an_existing_link_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "door").symlink_to("/")
    with pytest.raises(ApiError):
        server.check_member(member("door/etc/evil"), str(tmp_path))


def test_body_reader_decodes_chunked_bodies() -> None:
    raw = io.BytesIO(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT")
    body = server.BodyReader(raw, None)
    assert body.read_all(100) == b"hello world"
    assert body.done
    assert raw.read() == b"NEXT"  # the next request on the connection is untouched


def test_body_reader_stops_at_content_length() -> None:
    raw = io.BytesIO(b"abcdefNEXT")
    body = server.BodyReader(raw, 6)
    assert body.read(4) == b"abcd"
    assert body.read(100) == b"ef"
    assert body.read(100) == b""
    assert raw.read() == b"NEXT"


def test_body_reader_limits_and_detects_hangups() -> None:
    with pytest.raises(ApiError) as refused:
        server.BodyReader(io.BytesIO(b"x" * 10), 10).read_all(5)
    assert refused.value.code == "payload_too_large"
    with pytest.raises(server.ClientGone):
        server.BodyReader(io.BytesIO(b"abc"), 10).read_all(100)
    with pytest.raises(ApiError):
        server.BodyReader(io.BytesIO(b"zz\r\n"), None).read(10)


def test_exec_requests_are_validated(tmp_path: Path) -> None:
    good = server.ExecRequest(
        {"argv": ["ls"], "cwd": ".", "env": {"A": "1"}, "stdin": base64.b64encode(b"in").decode(), "timeout": 2},
        str(tmp_path),
    )
    assert good.command.cwd == str(tmp_path)
    assert good.command.env["A"] == "1"
    assert good.command.env[server.EXEC_MARKER] == good.command.marker
    assert (good.stdin, good.timeout, good.max_output) == (b"in", 2, server.DEFAULT_MAX_OUTPUT)

    removed = server.ExecRequest({"argv": ["ls"], "env": {"PATH": None}}, str(tmp_path))
    assert "PATH" not in removed.command.env

    for body in (
        {"argv": []},
        {"argv": "ls"},
        {"argv": ["ls"], "shell": True},
        {"argv": ["ls"], "timeout": 0},
        {"argv": ["ls"], "timeout": True},
        {"argv": ["ls"], "max_output": -1},
        {"argv": ["ls"], "stdin": "not base64!"},
        {"argv": ["ls"], "env": {"": "x"}},
        {"argv": ["ls"], "env": {"A": 1}},
    ):
        with pytest.raises(ApiError) as refused:
            server.ExecRequest(body, str(tmp_path))
        assert refused.value.code == "invalid_request", body


def test_markers_are_unique_per_command(tmp_path: Path) -> None:
    markers = {server.CommandSpec({"argv": ["true"]}, str(tmp_path)).marker for _ in range(100)}
    assert len(markers) == 100
