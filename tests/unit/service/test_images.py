"""Image names and the environment a commit passes on."""

from __future__ import annotations

from sandboxd.service import images
from sandboxd.store import SandboxRecord


def test_commit_env_overrides_only_the_sandboxes_own_variables() -> None:
    env = images.commit_env({"SECRET": "s", "PATH": "/evil", "LANG": "x"}, ["PATH=/usr/bin", "LANG=C.UTF-8", "TZ=UTC"])
    assert env == ["LANG=C.UTF-8", "PATH=/usr/bin", "SECRET="]


def test_rootfs_image() -> None:
    record = SandboxRecord("sbx_a", "tnt_a", "running", "base:1", {}, {}, None, 0.0, 0.0)
    assert images.rootfs_image(record) == "base:1"
    moved = SandboxRecord("sbx_a", "tnt_a", "hibernated", "base:1", {"rootfs_image": "x:y"}, {}, None, 0.0, 0.0)
    assert images.rootfs_image(moved) == "x:y"
    assert images.hibernation_image("sbx_a") == "sandboxd-hibernation:sbx_a"
    assert images.snapshot_image("snp_b") == "sandboxd-snapshot:snp_b"
