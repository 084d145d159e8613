"""Answer types: tolerant of new fields, strict about missing ones; exec stream events."""

from __future__ import annotations

import base64
import json

import pytest

from sandboxd.client._types import ExitEvent, FileInfo, OutputEvent, ProcessInfo, exec_event
from sandboxd.errors import SandboxdError, SandboxUnavailable


def test_unknown_fields_are_kept_aside_not_refused() -> None:
    info = ProcessInfo.from_wire({"id": "prc_1", "state": "running", "pid": 12, "argv": ["sleep", "9"], "cpu": 0.5})
    assert (info.id, info.state, info.pid, info.argv) == ("prc_1", "running", 12, ["sleep", "9"])
    assert info.extra == {"cpu": 0.5}


def test_a_missing_required_field_is_a_clear_sdk_error() -> None:
    with pytest.raises(SandboxdError, match="unexpected answer from sandboxd for ProcessInfo"):
        ProcessInfo.from_wire({"state": "running"})


@pytest.mark.parametrize("mode", ["0750", 0o750, "750"])
def test_file_mode_is_read_from_either_spelling(mode: str | int) -> None:
    info = FileInfo.from_wire({"name": "a", "type": "file", "size": 1, "mode": mode})
    assert info.mode == 0o750 and info.mode_octal == "0750"


def test_output_events_carry_exact_bytes() -> None:
    raw = b"\xff\xfe not utf-8 \x00"
    event = exec_event("stdout", json.dumps({"data": base64.b64encode(raw).decode()}))
    assert event == OutputEvent("stdout", raw)
    assert "not utf-8" in event.text


def test_exit_event() -> None:
    body = {
        "exit_code": None,
        "encoding": "base64",
        "stdout_truncated": False,
        "stderr_truncated": True,
        "duration_ms": 1002.5,
        "timed_out": True,
        "signal": 9,
    }
    event = exec_event("exit", json.dumps(body))
    assert isinstance(event, ExitEvent)
    assert (event.exit_code, event.timed_out, event.signal, event.stderr_truncated) == (None, True, 9, True)


def test_an_error_event_raises_the_class_its_code_names() -> None:
    with pytest.raises(SandboxUnavailable, match="went away"):
        exec_event("error", json.dumps({"error": "sandbox_unavailable", "message": "the sandbox went away"}))


def test_unknown_event_kinds_are_skipped() -> None:
    assert exec_event("progress", "{}") is None
