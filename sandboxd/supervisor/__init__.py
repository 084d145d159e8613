"""The supervisor: the one small process that runs inside every sandbox.

It is a single standard-library file (``server.py``) that the daemon copies into
each container and runs as the container's main process; see its docstring for
the wire protocol. The daemon side of that protocol is
``sandboxd.runtime.supervisor_client``.
"""

from __future__ import annotations

from pathlib import Path

SUPERVISOR_PATH: Path = Path(__file__).with_name("server.py")

__all__ = ["SUPERVISOR_PATH"]
