"""When each sandbox was last used, and how many calls are inside it right now.

Kept in memory: activity is only worth anything while the daemon runs, and after
a restart every sandbox counts as used at that moment, so a restart never sends a
fleet of sandboxes to sleep at once. Everything that uses a sandbox notes it here:
the HTTP layer around each call on a sandbox (``begin``/``end``, so a call that
runs for an hour is busy for that hour), the service layer when it reaches a
sandbox's supervisor, and the egress side for traffic (``touch``).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Activity:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._since = clock()
        self._last: dict[str, float] = {}
        self._inflight: dict[str, int] = {}

    def touch(self, sandbox_id: str) -> None:
        self._last[sandbox_id] = self._clock()

    def begin(self, sandbox_id: str) -> None:
        self._inflight[sandbox_id] = self._inflight.get(sandbox_id, 0) + 1
        self.touch(sandbox_id)

    def end(self, sandbox_id: str) -> None:
        left = self._inflight.get(sandbox_id, 0) - 1
        if left > 0:
            self._inflight[sandbox_id] = left
        else:
            self._inflight.pop(sandbox_id, None)
        self.touch(sandbox_id)

    def busy(self, sandbox_id: str) -> bool:
        return sandbox_id in self._inflight

    def last_active(self, sandbox_id: str, *, not_before: float = 0.0) -> float:
        """The latest of: its last use, the daemon's start, and ``not_before`` (say, its creation)."""
        return max(self._last.get(sandbox_id, 0.0), self._since, not_before)

    def forget(self, sandbox_id: str) -> None:
        self._last.pop(sandbox_id, None)
        self._inflight.pop(sandbox_id, None)
