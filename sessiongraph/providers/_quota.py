"""An upstream's daily request quota: requests sent per key per UTC day, shared through Redis."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..cache import warn_quota_low
from ..errors import UpstreamQuotaSpent, UpstreamRateLimited
from ..metrics import GUIDEBOOK_QUOTA_REMAINING, GUIDEBOOK_QUOTA_USED

__all__ = [
    "LOW_RATIO",
    "Counted",
    "DailyQuota",
    "MemoryQuotaStore",
    "QuotaStore",
    "QuotaUsage",
    "RedisQuotaStore",
    "utc_day",
]

logger = logging.getLogger("sessiongraph.upstream")

# Below this share of the day's requests left, answers carry an UPSTREAM_QUOTA_LOW warning.
LOW_RATIO = 0.1
# Counts and marks outlive their day by this much: machines' clocks disagree a little.
_MARGIN_SECONDS = 3600


def utc_day(now: float) -> tuple[str, float]:
    """The UTC day of `now` (YYYY-MM-DD) and the instant it ends (the next UTC midnight)."""
    moment = datetime.fromtimestamp(now, UTC)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.date().isoformat(), (start + timedelta(days=1)).timestamp()


def _iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Counted:
    """A store's answer to one request: whether it may be sent, the day's count after it, and
    until when the upstream itself refuses the key (0: it does not)."""

    allowed: bool
    used: int
    spent_until: float = 0.0


@dataclass(frozen=True)
class QuotaUsage:
    """One key's day so far, as `/readyz` and the gauges show it."""

    limit: int
    used: int
    remaining: int
    resets_at: float
    spent_until: float = 0.0

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "resetsAt": _iso(self.resets_at),
        }
        if self.spent_until:
            body["spentUntil"] = _iso(self.spent_until)
        return body


class QuotaStore(Protocol):
    @property
    def name(self) -> str: ...

    async def spend(
        self, scope: str, day: str, now: float, limit: int, day_ends: float
    ) -> Counted: ...

    async def mark_spent(self, scope: str, until: float, now: float) -> None: ...

    async def usage(self, scope: str, day: str) -> tuple[int, float]: ...


class MemoryQuotaStore:
    """This process's counts: the store without Redis, and the fallback while Redis is down."""

    name = "memory"

    def __init__(self, max_scopes: int = 10_000) -> None:
        # Caller keys come and go; beyond this many, other days' entries are dropped first.
        self.max_scopes = max_scopes
        self._counts: dict[str, tuple[str, int]] = {}
        self._spent: dict[str, float] = {}

    def used(self, scope: str, day: str) -> int:
        found = self._counts.get(scope)
        return found[1] if found is not None and found[0] == day else 0

    async def spend(self, scope: str, day: str, now: float, limit: int, day_ends: float) -> Counted:
        used = self.used(scope, day)
        until = self._spent.get(scope, 0.0)
        if until > now:
            return Counted(False, used, until)
        if used >= limit:
            return Counted(False, used)
        self.observe(scope, day, used + 1, 0.0)
        return Counted(True, used + 1)

    def observe(self, scope: str, day: str, used: int, spent_until: float) -> None:
        """Takes in a count read elsewhere (the shared one), so an outage goes on from it."""
        if used > self.used(scope, day):
            if scope not in self._counts and len(self._counts) >= self.max_scopes:
                self._prune(day)
            self._counts[scope] = (day, used)
        if spent_until > self._spent.get(scope, 0.0):
            self._spent[scope] = spent_until

    async def mark_spent(self, scope: str, until: float, now: float) -> None:
        if len(self._spent) >= self.max_scopes:
            self._spent = {key: value for key, value in self._spent.items() if value > now}
        self._spent[scope] = until

    async def usage(self, scope: str, day: str) -> tuple[int, float]:
        return self.used(scope, day), self._spent.get(scope, 0.0)

    def reset(self) -> None:
        self._counts.clear()
        self._spent.clear()

    def _prune(self, day: str) -> None:
        self._counts = {key: value for key, value in self._counts.items() if value[0] == day}
        while len(self._counts) >= self.max_scopes:
            del self._counts[next(iter(self._counts))]


# One round trip per request: refuse while the upstream's mark holds or the day is spent,
# otherwise count it. Times are milliseconds from the caller's clock.
_SPEND = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local spent_until = tonumber(redis.call('GET', KEYS[2]) or '0')
if spent_until > tonumber(ARGV[1]) then return {0, used, spent_until} end
if used >= tonumber(ARGV[2]) then return {0, used, 0} end
used = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used, 0}
"""


class RedisQuotaStore:
    """Counts in Redis, shared by every worker and machine using the same Redis.

    `sessiongraph:quota:<upstream>:<scope>:<YYYY-MM-DD>` counts the day's requests and expires
    after the day ends; `…:<scope>:spent` holds until when the upstream refuses the key.
    """

    name = "redis"

    def __init__(self, client: aioredis.Redis, upstream: str) -> None:
        self._client = client
        self._prefix = f"sessiongraph:quota:{upstream}:"
        self._spend = client.register_script(_SPEND)

    def day_key(self, scope: str, day: str) -> str:
        return f"{self._prefix}{scope}:{day}"

    def spent_key(self, scope: str) -> str:
        return f"{self._prefix}{scope}:spent"

    async def spend(self, scope: str, day: str, now: float, limit: int, day_ends: float) -> Counted:
        # Relative expiry: Redis's clock need not agree with ours (or a test's).
        ttl = math.ceil(day_ends - now) + _MARGIN_SECONDS
        allowed, used, until = await self._spend(
            keys=[self.day_key(scope, day), self.spent_key(scope)],
            args=[int(now * 1000), limit, ttl],
        )
        return Counted(bool(allowed), int(used), int(until) / 1000)

    async def mark_spent(self, scope: str, until: float, now: float) -> None:
        ttl_ms = max(1, int((until - now + _MARGIN_SECONDS) * 1000))
        await self._client.set(self.spent_key(scope), int(until * 1000), px=ttl_ms)

    async def usage(self, scope: str, day: str) -> tuple[int, float]:
        used, until = await self._client.mget(self.day_key(scope, day), self.spent_key(scope))
        return int(used or 0), int(until or 0) / 1000


class DailyQuota:
    """The requests one upstream allows each key per UTC day.

    One per process, shared by every client of the upstream (and by per-caller views of
    them), keyed by scope: a hash of the key, never the key. The client calls `spend` before
    each attempt it sends and `upstream_refused` when the upstream answers 429 itself.
    """

    def __init__(
        self,
        upstream: str,
        limit: int,
        *,
        shared: QuotaStore | None = None,
        server_scope: str = "",
        clock: Callable[[], float] = time.time,
        retry_seconds: float = 5.0,
    ) -> None:
        self.upstream = upstream
        self.limit = limit
        self.shared = shared
        self.local = MemoryQuotaStore()
        self.server_scope = server_scope
        self.clock = clock
        self.retry_seconds = retry_seconds
        self._down_until = 0.0
        # The caller key with the fewest requests left today: (day, used, remaining).
        self._caller_low: tuple[str, int, int] | None = None

    @property
    def store(self) -> str:
        if self.shared is None:
            return "memory"
        return self.shared.name if self._available() else "memory (redis unavailable)"

    async def spend(self, scope: str) -> None:
        """Counts one request about to be sent; raises UpstreamQuotaSpent instead when the
        day's requests are spent (or the upstream refuses the key), so it is never sent."""
        now = self.clock()
        day, day_ends = utc_day(now)
        counted: Counted | None = None
        shared = self._available()
        if shared is not None:
            try:
                counted = await shared.spend(scope, day, now, self.limit, day_ends)
            except (RedisError, OSError) as exc:
                self._failed(exc)
            else:
                self.local.observe(scope, day, counted.used, counted.spent_until)
        if counted is None:
            counted = await self.local.spend(scope, day, now, self.limit, day_ends)
        usage = self._usage(counted.used, counted.spent_until, now, day_ends)
        self._observe(scope, day, usage)
        if not counted.allowed:
            reopens = usage.spent_until if usage.spent_until > now else day_ends
            warn_quota_low(self.upstream, 0, self.limit, _iso(reopens))
            raise UpstreamQuotaSpent(
                self.upstream,
                f"{self.upstream}'s daily request quota ({self.limit}) is spent for this key; "
                f"nothing was sent, and requests resume at {_iso(reopens)}",
                retry_after=math.ceil(reopens - now),
                resets_at=_iso(reopens),
                limit=self.limit,
            )
        if usage.remaining < self.limit * LOW_RATIO:
            warn_quota_low(self.upstream, usage.remaining, self.limit, _iso(day_ends))

    async def upstream_refused(self, scope: str, retry_after: float | None) -> UpstreamRateLimited:
        """The upstream answered 429: its count wins (other tools may use the same key), so
        nothing more is sent with the key until its `Retry-After`, or the day's end.

        Returns the coded error for that answer.
        """
        now = self.clock()
        day, day_ends = utc_day(now)
        until = now + retry_after if retry_after is not None else day_ends
        await self.local.mark_spent(scope, until, now)
        shared = self._available()
        if shared is not None:
            try:
                await shared.mark_spent(scope, until, now)
            except (RedisError, OSError) as exc:
                self._failed(exc)
        self._observe(scope, day, self._usage(self.local.used(scope, day), until, now, day_ends))
        logger.warning(
            "upstream refused the key (429); not sending with it until then",
            extra={"upstream": self.upstream, "until": _iso(until)},
        )
        return UpstreamRateLimited(
            self.upstream,
            f"{self.upstream} is rate limiting us; nothing more is sent with this key until "
            f"{_iso(until)}",
            retry_after=retry_after if retry_after is not None else math.ceil(until - now),
            resetsAt=_iso(until),
        )

    async def usage(self, scope: str | None = None) -> QuotaUsage:
        """The day so far for `scope` (the server's key by default); refreshes the gauges."""
        scope = self.server_scope if scope is None else scope
        now = self.clock()
        day, day_ends = utc_day(now)
        found: tuple[int, float] | None = None
        shared = self._available()
        if shared is not None:
            try:
                found = await shared.usage(scope, day)
            except (RedisError, OSError) as exc:
                self._failed(exc)
            else:
                self.local.observe(scope, day, *found)
        if found is None:
            found = await self.local.usage(scope, day)
        usage = self._usage(*found, now, day_ends)
        self._observe(scope, day, usage)
        return usage

    async def status(self) -> dict[str, Any]:
        """What `/readyz` shows for the server's key."""
        usage = await self.usage()
        return {"enabled": True, **usage.as_json(), "store": self.store}

    def reset(self) -> None:
        """Forgets this process's counts and marks (Redis keeps its own)."""
        self.local.reset()
        self._caller_low = None
        self._down_until = 0.0

    def _usage(self, used: int, spent_until: float, now: float, day_ends: float) -> QuotaUsage:
        refused = spent_until > now
        return QuotaUsage(
            limit=self.limit,
            used=used,
            remaining=0 if refused else max(0, self.limit - used),
            resets_at=day_ends,
            spent_until=spent_until if refused else 0.0,
        )

    def _observe(self, scope: str, day: str, usage: QuotaUsage) -> None:
        if scope == self.server_scope:
            label = "server"
            used, remaining = usage.used, usage.remaining
        else:
            # One aggregate for every caller key: the one closest to running out today.
            label = "caller"
            low = self._caller_low
            if low is None or low[0] != day or usage.remaining <= low[2]:
                low = self._caller_low = (day, usage.used, usage.remaining)
            _, used, remaining = low
        GUIDEBOOK_QUOTA_USED.labels(label).set(used)
        GUIDEBOOK_QUOTA_REMAINING.labels(label).set(remaining)

    def _available(self) -> QuotaStore | None:
        return self.shared if time.monotonic() >= self._down_until else None

    def _failed(self, exc: Exception) -> None:
        # Once per outage: then this process counts alone until Redis is tried again.
        if time.monotonic() >= self._down_until:
            logger.warning(
                "redis quota counter unavailable; counting in this process",
                extra={
                    "upstream": self.upstream,
                    "error": type(exc).__name__,
                    "retry_seconds": self.retry_seconds,
                },
            )
        self._down_until = time.monotonic() + self.retry_seconds
