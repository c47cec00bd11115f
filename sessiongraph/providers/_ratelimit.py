"""Client-side rate limiting towards one upstream: sliding windows per second and per minute."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["Place", "RateLimiter", "SharedRateLimiter"]

logger = logging.getLogger("sessiongraph.upstream")


# The windows are widened by this share, for the servers that round their clocks.
MARGIN = 0.01


class Place:
    """One request's place in the windows.

    A server counts a request when it arrives, which is some time between our sending it and its
    answer beginning to come back. So a place counts from the start until `answered()` plus the
    window: only then can no later request land in the server's window of this one.
    """

    __slots__ = ("_limiter", "answered_at")

    def __init__(self, limiter: RateLimiter | None, answered_at: float = math.inf) -> None:
        self._limiter = limiter
        self.answered_at = answered_at

    def answered(self) -> None:
        """The answer has begun (or the request failed); later calls change nothing."""
        if self.answered_at == math.inf:
            self.answered_at = time.monotonic()
            if self._limiter is not None:
                self._limiter.moved.set()


class RateLimiter:
    """Waits so that at most `per_second` and `per_minute` requests reach the upstream in any such
    window, however long each took to get there.

    A limit of 0 turns that window off.
    """

    def __init__(self, per_second: float, per_minute: float, *, margin: float = MARGIN) -> None:
        self.spans = (1.0 + margin, 60.0 * (1.0 + margin))
        self._windows = [(self.spans[0], int(per_second)), (self.spans[1], int(per_minute))]
        self._windows = [(span, limit) for span, limit in self._windows if limit > 0]
        self._places: deque[Place] = deque()
        self._lock = asyncio.Lock()
        self.moved = asyncio.Event()  # set when a place is answered

    @property
    def enabled(self) -> bool:
        return bool(self._windows)

    def delay(self, now: float) -> float:
        """Seconds to wait before another request may start at `now`; infinite while the places
        in its way are still unanswered."""
        longest = max(span for span, _ in self._windows)
        while self._places and self._places[0].answered_at <= now - longest:
            self._places.popleft()
        ends = sorted(place.answered_at for place in self._places)
        wait = 0.0
        for span, limit in self._windows:
            inside = [end for end in ends if end > now - span]
            if len(inside) >= limit:
                wait = max(wait, inside[len(inside) - limit] + span - now)
        return wait

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[Place]:
        """Waits for a place and holds it for one request; the caller marks it `answered()` when
        the answer's headers arrive, else leaving marks it."""
        if not self._windows:
            yield Place(None, answered_at=-math.inf)
            return
        place = await self._take()
        try:
            yield place
        finally:
            place.answered()
            await self._end(place)

    async def _end(self, place: Place) -> None:
        """Where the windows are kept elsewhere, tells them when `place` was answered."""

    async def _take(self) -> Place:
        # One waiter at a time keeps starts in FIFO order, so no request starves.
        async with self._lock:
            while (wait := self.delay(time.monotonic())) > 0:
                if wait == math.inf:
                    self.moved.clear()
                    await self.moved.wait()
                else:
                    # An answer can only end a place later than those already answered, so
                    # nothing but time can make a finite wait shorter.
                    await asyncio.sleep(wait)
            place = Place(self)
            self._places.append(place)
            return place


# A sliding log in a sorted set: every gateway process that shares the Redis shares the budget.
# A place is scored at its start + hold until it is answered, then at the time it was answered.
_SLIDING_LOG = """
local key, now, per_second, per_minute, member = KEYS[1], tonumber(ARGV[1]),
    tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local second, minute, hold = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - minute)
local wait, unanswered = 0, 0
local function behind(score, span)
    if score > now then unanswered = 1 else wait = math.max(wait, score + span - now) end
end
if per_minute > 0 then
    local count = redis.call('ZCARD', key)
    if count >= per_minute then
        local first = count - per_minute
        behind(tonumber(redis.call('ZRANGE', key, first, first, 'WITHSCORES')[2]), minute)
    end
end
if per_second > 0 then
    local recent = redis.call('ZRANGEBYSCORE', key, now - second, '+inf', 'WITHSCORES')
    local count = #recent / 2
    if count >= per_second then
        behind(tonumber(recent[(count - per_second) * 2 + 2]), second)
    end
end
if wait > 0 or unanswered == 1 then return {wait, unanswered} end
redis.call('ZADD', key, now + hold, member)
redis.call('PEXPIRE', key, hold + minute + 1000)
return {0, 0}
"""

# How often a process waiting on places still unanswered in other processes asks again.
_POLL_SECONDS = 0.025


class _SharedPlace(Place):
    """A place in the windows kept in Redis, under its member name there."""

    __slots__ = ("member",)

    def __init__(self, member: str) -> None:
        super().__init__(None)
        self.member = member


class SharedRateLimiter(RateLimiter):
    """The same limits, kept in Redis for every worker; local limits while Redis is down.

    `hold_seconds` bounds how long a place of a process that died before its answer counts.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        name: str,
        per_second: float,
        per_minute: float,
        *,
        hold_seconds: float = 60.0,
    ) -> None:
        super().__init__(per_second, per_minute)
        self._client = client
        self._key = f"sg:ratelimit:{name}"
        self._per_second = int(per_second)
        self._per_minute = int(per_minute)
        self._hold_ms = int(hold_seconds * 1000)
        self._script = client.register_script(_SLIDING_LOG)
        self._shared_lock = asyncio.Lock()

    async def _take(self) -> Place:
        try:
            return await self._take_shared(uuid.uuid4().hex)
        except (RedisError, OSError):
            logger.warning("redis rate limit unavailable; limiting this process alone")
            return await super()._take()

    async def _end(self, place: Place) -> None:
        if not isinstance(place, _SharedPlace):
            return  # taken here alone while Redis was away
        answered_ms = int((time.time() - (time.monotonic() - place.answered_at)) * 1000)
        try:
            await self._client.zadd(self._key, {place.member: answered_ms}, xx=True)
        except (RedisError, OSError):
            logger.warning("redis rate limit unavailable; a place is kept until it expires")

    async def _take_shared(self, member: str) -> _SharedPlace:
        async with self._shared_lock:
            while True:
                wait_ms, unanswered = await self._script(
                    keys=[self._key],
                    args=[
                        int(time.time() * 1000),
                        self._per_second,
                        self._per_minute,
                        member,
                        int(self.spans[0] * 1000),
                        int(self.spans[1] * 1000),
                        self._hold_ms,
                    ],
                )
                if not wait_ms and not unanswered:
                    return _SharedPlace(member)
                # An answer in another process ends its place at a time we cannot foresee.
                await asyncio.sleep(max(int(wait_ms) / 1000, _POLL_SECONDS if unanswered else 0))
