from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from mitmproxy.test import taddons

from egress_proxy.loader import StateLoader
from egress_proxy.state import StateHolder, write_state_file


def document(*addresses: str) -> dict[str, Any]:
    return {"version": 1, "sandboxes": {
        a: {"sandbox_id": f"sbx_{i}", "tenant_id": "tnt", "policy": {"rules": []}} for i, a in enumerate(addresses)
    }}


def test_configure_loads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state_file(path, document("10.0.0.2"))
    holder = StateHolder()
    loader = StateLoader(holder)
    with taddons.context(loader) as tctx:
        tctx.configure(loader, egress_state=str(path))
        assert list(holder.current.sandboxes) == ["10.0.0.2"]


def test_reload_only_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state_file(path, document("10.0.0.2"))
    holder = StateHolder()
    loader = StateLoader(holder)
    with taddons.context(loader) as tctx:
        tctx.configure(loader, egress_state=str(path))
        assert loader.reload() is False
        write_state_file(path, document("10.0.0.3"))
        assert loader.reload() is True
        assert list(holder.current.sandboxes) == ["10.0.0.3"]


def test_broken_file_keeps_the_last_good_state(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    write_state_file(path, document("10.0.0.2"))
    holder = StateHolder()
    loader = StateLoader(holder)
    with taddons.context(loader) as tctx:
        tctx.configure(loader, egress_state=str(path))
        path.write_text("{not json")
        with caplog.at_level(logging.ERROR):
            loader.reload()
        assert list(holder.current.sandboxes) == ["10.0.0.2"]
        assert "keeping the previous state" in caplog.text


def test_missing_file_refuses_everything_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    holder = StateHolder()
    loader = StateLoader(holder)
    with taddons.context(loader) as tctx, caplog.at_level(logging.WARNING):
        tctx.configure(loader, egress_state=str(tmp_path / "absent.json"))
        assert holder.current.sandboxes == {}
        assert "does not exist: refusing all traffic" in caplog.text


def test_encrypted_file_with_key(tmp_path: Path) -> None:
    key_path = tmp_path / "state.key"
    key = os.urandom(32)
    key_path.write_bytes(key)
    path = tmp_path / "state.bin"
    write_state_file(path, document("10.0.0.2"), key)
    holder = StateHolder()
    loader = StateLoader(holder)
    with taddons.context(loader) as tctx:
        tctx.configure(loader, egress_state=str(path), egress_state_key=str(key_path))
        assert list(holder.current.sandboxes) == ["10.0.0.2"]


async def test_running_watcher_applies_a_change_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state_file(path, document("10.0.0.2"))
    holder = StateHolder()
    loader = StateLoader(holder)
    with taddons.context(loader) as tctx:
        tctx.configure(loader, egress_state=str(path))
        loader.running()
        try:
            write_state_file(path, document("10.0.0.7"))
            written = time.monotonic()
            while "10.0.0.7" not in holder.current.sandboxes:
                assert time.monotonic() - written < 1.0, "the change was not applied within a second"
                await asyncio.sleep(0.02)
        finally:
            await loader.done()
