from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from egress_proxy.state import (
    StateError,
    decode_state_bytes,
    encode_state_bytes,
    load_key,
    normalize_client_ip,
    parse_state,
    read_state_file,
    write_state_file,
)


def document(**sandboxes: Any) -> dict[str, Any]:
    return {"version": 1, "sandboxes": sandboxes or {"10.0.0.2": sandbox()}}


def sandbox(**extra: Any) -> dict[str, Any]:
    return {
        "sandbox_id": "sbx_1",
        "tenant_id": "tnt_1",
        "policy": {"rules": [{"action": "allow", "host": "api.example.com"}]},
        "secrets": [],
        **extra,
    }


def test_parse_state_builds_entries_by_address() -> None:
    state = parse_state(document())
    entry = state.sandboxes["10.0.0.2"]
    assert entry.sandbox_id == "sbx_1" and entry.tenant_id == "tnt_1"
    assert entry.policy.decide_request("api.example.com", 443, "GET", "/").allowed


def test_a_bad_sandbox_is_refused_alone() -> None:
    state = parse_state({"version": 1, "sandboxes": {
        "10.0.0.2": sandbox(),
        "10.0.0.3": sandbox(policy={"rules": [{"action": "maybe", "host": "x"}]}),
        "not-an-ip": sandbox(),
    }})
    assert list(state.sandboxes) == ["10.0.0.2"]
    assert "rules[0]: action must be 'allow' or 'deny'" in state.invalid["10.0.0.3"]
    assert "not-an-ip" in state.invalid


@pytest.mark.parametrize("bad", [[], {"version": 2}, {"version": 1, "sandboxes": []}])
def test_bad_top_level_is_an_error(bad: object) -> None:
    with pytest.raises(StateError):
        parse_state(bad)


def test_client_ip_normalization() -> None:
    assert normalize_client_ip("::ffff:10.0.0.2") == "10.0.0.2"
    assert normalize_client_ip("fe80::1%eth0") == "fe80::1"
    assert normalize_client_ip("10.0.0.2") == "10.0.0.2"


def test_write_state_file_is_atomic_private_and_readable(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state_file(path, document())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_state_file(path).sandboxes["10.0.0.2"].sandbox_id == "sbx_1"
    before = path.stat().st_ino
    write_state_file(path, document(**{"10.0.0.9": sandbox(sandbox_id="sbx_9")}))
    assert path.stat().st_ino != before, "a rename gives the reader a new inode to notice"
    assert list(read_state_file(path).sandboxes) == ["10.0.0.9"]
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_write_state_file_refuses_an_invalid_document(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="10.0.0.3"):
        write_state_file(tmp_path / "s.json", document(**{"10.0.0.3": sandbox(tenant_id="")}))
    assert not (tmp_path / "s.json").exists()


def test_encrypted_round_trip_and_wrong_key(tmp_path: Path) -> None:
    key = os.urandom(32)
    data = encode_state_bytes(document(), key)
    assert b"api.example.com" not in data
    assert decode_state_bytes(data, key) == document()
    with pytest.raises(StateError, match="does not decrypt"):
        decode_state_bytes(data, os.urandom(32))
    with pytest.raises(StateError, match="not valid JSON"):
        decode_state_bytes(data, None)


def test_key_file_must_hold_32_bytes(tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(b"x" * 16)
    with pytest.raises(StateError, match="exactly 32 bytes"):
        load_key(tmp_path / "short")
    (tmp_path / "good").write_bytes(b"k" * 32)
    assert load_key(tmp_path / "good") == b"k" * 32


def test_daemon_side_modules_do_not_load_mitmproxy() -> None:
    """sandboxd writes state and creates the CA with these; it should not pay for mitmproxy."""
    code = "import sys, egress_proxy.state, egress_proxy.ca; print(sorted(m for m in sys.modules if m.startswith('mitmproxy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
