"""StateLoader: keep the proxy's view of sandboxes, policies and secrets current.

Polls the state file's identity (inode, size, mtime) every 250 ms; a change is
read and parsed off the event loop and swapped in whole. Live connections are
untouched: the next request on them is decided with the new state. A file
that cannot be read or parsed leaves the last good state in place (sandboxd
writes atomically, so that means a bug to log, not a half-written file); a
missing file means no sandboxes, so everything is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from mitmproxy import ctx
from mitmproxy.addonmanager import Loader

from egress_proxy.state import EgressState, StateError, StateHolder, load_key, read_state_file

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25

Signature = tuple[int, int, int] | None
_NEVER_READ: tuple[int, int, int] = (-1, -1, -1)


def file_signature(path: str) -> Signature:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class StateLoader:
    def __init__(self, holder: StateHolder, poll_seconds: float = POLL_SECONDS) -> None:
        self._holder = holder
        self._poll_seconds = poll_seconds
        self._path = ""
        self._key: bytes | None = None
        self._signature: Signature = _NEVER_READ
        self._task: asyncio.Task[None] | None = None

    def load(self, loader: Loader) -> None:
        loader.add_option("egress_state", str, "", "Path of the state file sandboxd writes (see egress_proxy.state).")
        loader.add_option(
            "egress_state_key", str, "", "Path of a 32-byte key; when set, the state file is AES-GCM encrypted."
        )

    def configure(self, updated: set[str]) -> None:
        if not {"egress_state", "egress_state_key"} & updated:
            return
        self._path = ctx.options.egress_state
        self._key = load_key(ctx.options.egress_state_key) if ctx.options.egress_state_key else None
        self.reload()

    def running(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def reload(self) -> bool:
        """Read the file now if it changed; True when a new state was installed."""
        signature = file_signature(self._path) if self._path else None
        if signature == self._signature:
            return False
        state = self._read(signature)
        self._signature = signature
        if state is None:
            return False
        self._install(state)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            if not self._path:
                continue
            signature = file_signature(self._path)
            if signature == self._signature:
                continue
            state = await asyncio.to_thread(self._read, signature)
            self._signature = signature
            if state is not None:
                self._install(state)

    def _read(self, signature: Signature) -> EgressState | None:
        if signature is None:
            if self._path:
                logger.warning("egress state file %s does not exist: refusing all traffic", self._path)
            return EgressState()
        try:
            return read_state_file(self._path, self._key)
        except (OSError, StateError) as exc:
            logger.error("egress state file %s not loaded, keeping the previous state: %s", self._path, exc)
            return None

    def _install(self, state: EgressState) -> None:
        self._holder.current = state
        for address, reason in state.invalid.items():
            logger.error("egress state: refusing the sandbox at %s: %s", address, reason)
        logger.info("egress state: %d sandbox(es) loaded", len(state.sandboxes))
