"""Names and labels of the images sandboxd makes from sandboxes.

A snapshot is an image ``sandboxd-snapshot:<snapshot id>``; a hibernated sandbox
sleeps as ``sandboxd-hibernation:<sandbox id>``. Both are commits of the sandbox's
container, so each stores only what changed on top of the image the container
ran from. Ids are random, so several daemons sharing one engine never collide,
and each only ever removes tags it can name from its own records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from sandboxd.runtime.base import LABEL_HIBERNATION, LABEL_SNAPSHOT
from sandboxd.store import SandboxRecord

SNAPSHOT_REPOSITORY: Final = "sandboxd-snapshot"
HIBERNATION_REPOSITORY: Final = "sandboxd-hibernation"


def snapshot_image(snapshot_id: str) -> str:
    return f"{SNAPSHOT_REPOSITORY}:{snapshot_id}"


def hibernation_image(sandbox_id: str) -> str:
    return f"{HIBERNATION_REPOSITORY}:{sandbox_id}"


def rootfs_image(record: SandboxRecord) -> str:
    """The image the sandbox's filesystem lives on: its last hibernation, a restored snapshot, or its image."""
    return record.spec.get("rootfs_image") or record.image


def image_labels(*, snapshot_id: str = "", hibernation_of: str = "") -> dict[str, str]:
    # Both keys are always set: an image inherits its parent's labels, and a hibernation
    # of a forked sandbox must not claim to be the snapshot it was forked from.
    return {LABEL_SNAPSHOT: snapshot_id, LABEL_HIBERNATION: hibernation_of}


def commit_env(sandbox_env: Mapping[str, str], image_env: Iterable[str]) -> list[str]:
    """Environment entries that keep a sandbox's own variables out of an image made from it.

    The engine copies the container's environment into a committed image and can only
    be told to override entries, not drop them: each of the sandbox's variables gets the
    value it has in the image underneath (empty when it has none). The sandbox itself
    gets its values back from its record whenever a container is made for it.
    """
    underneath = dict(entry.partition("=")[::2] for entry in image_env)
    return [f"{name}={underneath.get(name, '')}" for name in sorted(sandbox_env)]
