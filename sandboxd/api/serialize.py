"""What the supervisor's answers look like on the wire, in one place for every router.

Dataclasses become objects, bytes become base64, and a file's mode becomes the
octal string people read ("0644") rather than the number the kernel keeps.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from sandboxd.runtime.agent_types import FileInfo


def to_json(value: Any) -> Any:
    if isinstance(value, FileInfo):
        return {**to_json(dataclasses.asdict(value)), "mode": value.mode_octal}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_json(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value
