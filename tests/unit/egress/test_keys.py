"""Key files and the sealed-secret box."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandboxd.egress.keys import SecretBox, ensure_key_file
from sandboxd.errors import SandboxdError


def test_a_key_is_made_once_private_and_then_kept(tmp_path: Path) -> None:
    path = tmp_path / "k" / "secrets.key"
    key = ensure_key_file(path)
    assert len(key) == 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ensure_key_file(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"], "no temp file may be left"


def test_racing_creators_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "state.key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: ensure_key_file(path), range(32)))
    assert len(keys) == 1


def test_a_key_file_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.key"
    path.write_bytes(b"x" * 16)
    with pytest.raises(SandboxdError, match="exactly 32 bytes"):
        ensure_key_file(path)


def test_sealed_values_open_only_under_their_tenant_and_name(tmp_path: Path) -> None:
    box = SecretBox(ensure_key_file(tmp_path / "k"))
    sealed = box.seal("tnt_a", "TOKEN", "value-123456")
    assert b"value-123456" not in sealed
    assert box.open("tnt_a", "TOKEN", sealed) == "value-123456"
    for tenant, name in (("tnt_b", "TOKEN"), ("tnt_a", "OTHER")):
        with pytest.raises(SandboxdError, match="does not decrypt"):
            box.open(tenant, name, sealed)
    assert box.seal("tnt_a", "TOKEN", "value-123456") != sealed, "each seal has its own nonce"
