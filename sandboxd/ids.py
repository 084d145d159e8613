"""Resource ids: a kind prefix and 20 random base32 characters, e.g. ``sbx_k3jq...``.

The prefix makes an id readable in logs and error messages and lets ``parse_id``
refuse an id of the wrong kind before any lookup. The 100 random bits make ids
unguessable, so holding one tenant's ids tells nothing about another's.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Final

from sandboxd.errors import InvalidRequest

__all__ = [
    "KEY",
    "PROCESS",
    "SANDBOX",
    "SNAPSHOT",
    "TENANT",
    "is_id",
    "new_id",
    "parse_id",
]

SANDBOX: Final = "sbx"
TENANT: Final = "tnt"
KEY: Final = "key"
PROCESS: Final = "prc"
SNAPSHOT: Final = "snp"

RANDOM_CHARS: Final = 20

_KIND_NAMES: Final = {
    SANDBOX: "sandbox id",
    TENANT: "tenant id",
    KEY: "API key id",
    PROCESS: "process id",
    SNAPSHOT: "snapshot id",
}
_PREFIX_SHAPE: Final = re.compile(r"[a-z]{2,8}")
_RANDOM_SHAPE: Final = f"[a-z2-7]{{{RANDOM_CHARS}}}"
_SHOWN_CHARS: Final = 80


def new_id(prefix: str) -> str:
    """A fresh id of the given kind: ``new_id("sbx")`` -> ``"sbx_" + 20 base32 chars``."""
    if not _PREFIX_SHAPE.fullmatch(prefix):
        raise ValueError(f"id prefix must be 2-8 lowercase letters, not {prefix!r}")
    # 13 random bytes encode to 21 base32 characters; the first 20 carry 100 random bits.
    random_part = base64.b32encode(secrets.token_bytes(13)).decode("ascii")[:RANDOM_CHARS]
    return f"{prefix}_{random_part.lower()}"


def is_id(kind_prefix: str, value: object) -> bool:
    """Whether ``value`` has the shape of an id of this kind (says nothing of existence)."""
    return isinstance(value, str) and _shape(kind_prefix).fullmatch(value) is not None


def parse_id(kind_prefix: str, value: object, what: str | None = None) -> str:
    """Return ``value`` if it is shaped like an id of this kind, else raise InvalidRequest.

    ``what`` names the id in the message ("sandbox id", "snapshot id"); by default it
    is derived from the prefix.
    """
    if is_id(kind_prefix, value):
        assert isinstance(value, str)
        return value
    name = what or _KIND_NAMES.get(kind_prefix, f"{kind_prefix} id")
    if isinstance(value, str):
        shown = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."
        given = repr(shown)
    else:
        given = f"a value of type {type(value).__name__}"
    raise InvalidRequest(
        f"{given} is not a valid {name} "
        f"(expected {kind_prefix}_ followed by {RANDOM_CHARS} lowercase letters/digits)"
    )


_SHAPES: dict[str, re.Pattern[str]] = {}


def _shape(kind_prefix: str) -> re.Pattern[str]:
    shape = _SHAPES.get(kind_prefix)
    if shape is None:
        shape = _SHAPES[kind_prefix] = re.compile(re.escape(kind_prefix) + "_" + _RANDOM_SHAPE)
    return shape
