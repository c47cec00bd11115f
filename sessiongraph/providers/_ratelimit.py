"""Client-side rate limiting towards one upstream: sliding windows per second and per minute."""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["RateLimiter"]


class RateLimiter:
    """Waits so that at most `per_second` and `per_minute` requests start in any such window.

    A limit of 0 turns that window off.
    """

    def __init__(self, per_second: float, per_minute: float) -> None:
        self._windows = [(1.0, int(per_second)), (60.0, int(per_minute))]
        self._windows = [(span, limit) for span, limit in self._windows if limit > 0]
        longest = max((limit for _, limit in self._windows), default=0)
        self._starts: deque[float] = deque(maxlen=longest or None)
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._windows)

    def delay(self, now: float) -> float:
        """Seconds to wait before another request may start at `now`."""
        wait = 0.0
        for span, limit in self._windows:
            if len(self._starts) >= limit:
                oldest_in_window = self._starts[-limit]
                wait = max(wait, oldest_in_window + span - now)
        return wait

    async def acquire(self) -> None:
        if not self._windows:
            return
        # One waiter at a time keeps starts in FIFO order, so no request starves.
        async with self._lock:
            # Time is the only thing we wait for; no event could signal it sooner.
            while (wait := self.delay(time.monotonic())) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)
            self._starts.append(time.monotonic())
