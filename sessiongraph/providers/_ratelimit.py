"""Client-side rate limiting towards one upstream: sliding windows per second and per minute."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["RateLimiter", "SharedRateLimiter"]

logger = logging.getLogger("sessiongraph.upstream")


# Windows are kept this much wider than the upstream's: requests reach the server later than
# they leave, by varying amounts, so a request sent exactly one window after another can land
# inside the server's window of it.
MARGIN = 0.05


class RateLimiter:
    """Waits so that at most `per_second` and `per_minute` requests start in any such window
    (widened by `margin`, so the upstream's own count never exceeds them either).

    A limit of 0 turns that window off.
    """

    def __init__(self, per_second: float, per_minute: float, *, margin: float = MARGIN) -> None:
        self.spans = (1.0 + margin, 60.0 * (1.0 + margin))
        self._windows = [(self.spans[0], int(per_second)), (self.spans[1], int(per_minute))]
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


# A sliding log in a sorted set: every gateway process that shares the Redis shares the budget.
_SLIDING_LOG = """
local key, now, per_second, per_minute, member = KEYS[1], tonumber(ARGV[1]),
    tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local second, minute = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - minute)
local wait = 0
if per_minute > 0 then
    local count = redis.call('ZCARD', key)
    if count >= per_minute then
        local first = count - per_minute
        local oldest = redis.call('ZRANGE', key, first, first, 'WITHSCORES')
        wait = math.max(wait, tonumber(oldest[2]) + minute - now)
    end
end
if per_second > 0 then
    local recent = redis.call('ZRANGEBYSCORE', key, now - second, '+inf', 'WITHSCORES')
    local count = #recent / 2
    if count >= per_second then
        local index = (count - per_second) * 2 + 2
        wait = math.max(wait, tonumber(recent[index]) + second - now)
    end
end
if wait > 0 then return wait end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, minute + 1000)
return 0
"""


class SharedRateLimiter(RateLimiter):
    """The same limits, kept in Redis for every worker; local limits while Redis is down."""

    def __init__(
        self, client: aioredis.Redis, name: str, per_second: float, per_minute: float
    ) -> None:
        super().__init__(per_second, per_minute)
        self._client = client
        self._key = f"sg:ratelimit:{name}"
        self._per_second = int(per_second)
        self._per_minute = int(per_minute)
        self._script = client.register_script(_SLIDING_LOG)

    async def acquire(self) -> None:
        if not self.enabled:
            return
        while True:
            try:
                wait_ms = int(
                    await self._script(
                        keys=[self._key],
                        args=[
                            int(time.time() * 1000),
                            self._per_second,
                            self._per_minute,
                            uuid.uuid4().hex,
                            int(self.spans[0] * 1000),
                            int(self.spans[1] * 1000),
                        ],
                    )
                )
            except (RedisError, OSError):
                logger.warning("redis rate limit unavailable; limiting this process alone")
                await super().acquire()
                return
            if wait_ms <= 0:
                return
            await asyncio.sleep(wait_ms / 1000)
