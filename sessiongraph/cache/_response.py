"""Cross-request caching of upstream reads: TTLs, stale-while-revalidate, single-flight.

Identical concurrent reads become one upstream request whether or not caching is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import UpstreamError
from ..metrics import CACHE_EVENTS
from ._backends import CacheBackend

__all__ = [
    "Freshness",
    "ResponseCache",
    "Stored",
    "collect_warnings",
    "current_warnings",
    "note_read",
    "spoil_trace",
    "start_collecting",
    "start_trace",
    "uncached",
    "warn_quota_low",
    "warn_stale",
]

logger = logging.getLogger("sessiongraph.cache")

# The GraphQL request being served, if any, collects warnings (stale data) here.
_warnings: ContextVar[list[dict[str, Any]] | None] = ContextVar("sessiongraph_warnings")


@dataclass
class ReadTrace:
    """What one GraphQL request read: whether every read was fresh from cache or storable,
    how long the freshest-expiring of them stays fresh, and their tags."""

    cacheable: bool = True
    fresh_until: float = float("inf")
    tags: set[str] = field(default_factory=set)
    reads: int = 0

    def record(self, stored: Stored, tags: Iterable[str]) -> None:
        self.note(stored.fresh_until, tags)

    def note(self, fresh_until: float, tags: Iterable[str]) -> None:
        self.reads += 1
        if fresh_until <= time.time():
            self.cacheable = False
        self.fresh_until = min(self.fresh_until, fresh_until)
        self.tags.update(tags)

    def spoil(self) -> None:
        self.cacheable = False


_trace: ContextVar[ReadTrace | None] = ContextVar("sessiongraph_read_trace", default=None)


def start_trace() -> ReadTrace:
    trace = ReadTrace()
    _trace.set(trace)
    return trace


def note_read(fresh_until: float, tags: Iterable[str]) -> None:
    """The current request used data derived from cached reads (kept by their reader, e.g. the
    OpenF1 catalogue): its answer stays fresh no longer than they do."""
    trace = _trace.get()
    if trace is not None:
        trace.note(fresh_until, tags)


def warn_stale(upstream: str, age_seconds: float, reason: str) -> None:
    """Adds a STALE_DATA warning to the current request's answer."""
    collected = _warnings.get(None)
    if collected is None:
        return
    message = f"{upstream} {reason}; serving a cached answer"
    # One warning per cause, however many of the request's reads it touched.
    for earlier in collected:
        if earlier.get("upstream") == upstream and earlier.get("message") == message:
            earlier["ageSeconds"] = max(earlier.get("ageSeconds", 0), round(age_seconds, 1))
            return
    collected.append(
        {
            "code": "STALE_DATA",
            "upstream": upstream,
            "message": message,
            "ageSeconds": round(age_seconds, 1),
        }
    )


def warn_quota_low(upstream: str, remaining: int, limit: int, resets_at: str) -> None:
    """Adds an UPSTREAM_QUOTA_LOW warning to the current request's answer (once per request,
    with the fewest requests any of its reads left)."""
    collected = _warnings.get(None)
    if collected is None:
        return
    for earlier in collected:
        if earlier.get("code") == "UPSTREAM_QUOTA_LOW" and earlier.get("upstream") == upstream:
            earlier["remaining"] = min(earlier["remaining"], remaining)
            return
    collected.append(
        {
            "code": "UPSTREAM_QUOTA_LOW",
            "upstream": upstream,
            "message": f"{upstream}'s daily request quota is nearly spent",
            "remaining": remaining,
            "limit": limit,
            "resetsAt": resets_at,
        }
    )


def spoil_trace() -> None:
    """The current request did something whose result must not be replayed (e.g. a write)."""
    trace = _trace.get()
    if trace is not None:
        trace.spoil()


@contextlib.contextmanager
def collect_warnings() -> Iterator[list[dict[str, Any]]]:
    collected: list[dict[str, Any]] = []
    token = _warnings.set(collected)
    try:
        yield collected
    finally:
        _warnings.reset(token)


def current_warnings() -> list[dict[str, Any]]:
    return _warnings.get(None) or []


def start_collecting() -> list[dict[str, Any]]:
    """Like `collect_warnings` for code that cannot wrap the request in a `with`."""
    collected: list[dict[str, Any]] = []
    _warnings.set(collected)
    return collected


@dataclass(frozen=True)
class Freshness:
    """How long a response is fresh, then how long it may be served while a refresh runs."""

    fresh_seconds: float
    stale_seconds: float = 0.0


@dataclass(frozen=True)
class Stored:
    status: int
    headers: dict[str, str]
    body: bytes
    stored_at: float = 0.0
    fresh_until: float = 0.0
    stale_until: float = 0.0

    def encode(self) -> bytes:
        head = orjson.dumps(
            {
                "s": self.status,
                "h": self.headers,
                "t": self.stored_at,
                "f": self.fresh_until,
                "x": self.stale_until,
            }
        )
        return head + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> Stored | None:
        head, _, body = raw.partition(b"\n")
        try:
            meta = orjson.loads(head)
            return cls(meta["s"], meta["h"], body, meta["t"], meta["f"], meta["x"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None


Loader = Callable[[], Awaitable[Stored]]
Policy = Callable[[Stored], Freshness | None]


def uncached(_stored: Stored) -> Freshness | None:
    """The policy of a read that must see the upstream as it is now (a live poll)."""
    return None


class ResponseCache:
    """Reads through a backend (or none, with `backend=None`: coalescing only)."""

    def __init__(
        self,
        backend: CacheBackend | None,
        *,
        grace_seconds: float = 86400,
        fill_wait_seconds: float = 10,
    ) -> None:
        self.backend = backend
        self.grace_seconds = grace_seconds
        # How long a process waits for another process's fill before reading upstream itself.
        self.fill_wait_seconds = fill_wait_seconds
        self.stats: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._inflight: dict[str, asyncio.Task[Stored]] = {}
        self._inflight_tags: dict[str, tuple[str, ...]] = {}
        self._generations: Counter[str] = Counter()
        self._background: set[asyncio.Task[Any]] = set()
        # Bumped by every write's invalidation; a result computed across one is not stored.
        self.invalidations = 0

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    async def read(
        self,
        upstream: str,
        key: str,
        load: Loader,
        policy: Policy,
        tags: Iterable[str] = (),
    ) -> Stored:
        tag_tuple = tuple(tags)
        trace = _trace.get()
        entry = await self._lookup(key)
        now = time.time()
        if entry is not None and now < entry.fresh_until:
            self.count(upstream, "hit")
            if trace is not None:
                trace.record(entry, tag_tuple)
            return entry
        if entry is not None and now < entry.stale_until:
            self.count(upstream, "stale")
            self._refresh_in_background(upstream, key, load, policy, tag_tuple)
            if trace is not None:
                trace.spoil()
            return entry
        try:
            fetched = await self._single_flight(upstream, key, load, policy, tag_tuple)
        except UpstreamError as exc:
            if trace is not None:
                trace.spoil()
            if entry is None:
                raise
            self.count(upstream, "stale_on_error")
            self._warn(upstream, entry, exc)
            return entry
        if trace is not None:
            trace.record(fetched, tag_tuple)
        return fetched

    async def invalidate(self, upstream: str, tags: Iterable[str]) -> None:
        """Drop every cached read carrying one of `tags`, including reads now in flight."""
        tag_set = set(tags)
        self.invalidations += 1
        for tag in tag_set:
            self._generations[tag] += 1
        for key, key_tags in list(self._inflight_tags.items()):
            if tag_set & set(key_tags):
                # Later readers must not join a read that started before the write.
                self._inflight.pop(key, None)
                self._inflight_tags.pop(key, None)
        if self.backend is not None:
            self.count(upstream, "invalidated", await self.backend.invalidate(tag_set))

    def count(self, upstream: str, event: str, amount: int = 1) -> None:
        self.stats[upstream][event] += amount
        CACHE_EVENTS.labels(upstream, event).inc(amount)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self.backend is not None:
            await self.backend.close()

    async def _lookup(self, key: str) -> Stored | None:
        if self.backend is None:
            return None
        raw = await self.backend.get(key)
        return Stored.decode(raw) if raw is not None else None

    async def _single_flight(
        self, upstream: str, key: str, load: Loader, policy: Policy, tags: tuple[str, ...]
    ) -> Stored:
        task = self._inflight.get(key)
        if task is None:
            self.count(upstream, "miss")
            task = asyncio.ensure_future(self._load_and_store(key, load, policy, tags))
            self._inflight[key] = task
            self._inflight_tags[key] = tags
            task.add_done_callback(lambda done: self._forget(key, done))
        else:
            self.count(upstream, "coalesced")
        # shield: one reader giving up must not cancel the request the others wait on.
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[Stored]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
            self._inflight_tags.pop(key, None)
        if not task.cancelled():
            task.exception()  # consumed here so an unawaited failure is not logged as lost

    async def _load_and_store(
        self, key: str, load: Loader, policy: Policy, tags: tuple[str, ...]
    ) -> Stored:
        generations = [self._generations[tag] for tag in tags]
        backend = self.backend
        claimed = backend is not None and await backend.try_lock(key, self.fill_wait_seconds)
        if backend is not None and not claimed:
            filled = await self._wait_for_fill(backend, key)
            if filled is not None:
                return filled
        try:
            response = await load()
            return await self._store(key, response, policy, tags, generations)
        finally:
            # Only once the answer is stored: a process waiting for it must find it then.
            if backend is not None and claimed:
                await backend.unlock(key)

    async def _store(
        self,
        key: str,
        response: Stored,
        policy: Policy,
        tags: tuple[str, ...],
        generations: list[int],
    ) -> Stored:
        # Worked out even with no backend: answers built from this read say how long they
        # stay fresh (`Cache-Control`), whether or not the gateway keeps it.
        freshness = policy(response)
        if freshness is None or freshness.fresh_seconds <= 0:
            return response
        if generations != [self._generations[tag] for tag in tags]:
            return response  # a write happened meanwhile; this answer may predate it
        now = time.time()
        stored = Stored(
            response.status,
            response.headers,
            response.body,
            stored_at=now,
            fresh_until=now + freshness.fresh_seconds,
            stale_until=now + freshness.fresh_seconds + freshness.stale_seconds,
        )
        if self.backend is not None:
            keep = freshness.fresh_seconds + freshness.stale_seconds + self.grace_seconds
            await self.backend.set(key, stored.encode(), keep, tags)
        return stored

    async def _wait_for_fill(self, backend: CacheBackend, key: str) -> Stored | None:
        """Another process is reading the same thing upstream: wait for its answer."""
        deadline = time.monotonic() + self.fill_wait_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            raw = await backend.get(key)
            entry = Stored.decode(raw) if raw is not None else None
            if entry is not None and time.time() < entry.fresh_until:
                return entry
            if not await backend.locked(key):
                return None  # it finished without storing (an uncacheable answer)
        return None

    def _refresh_in_background(
        self, upstream: str, key: str, load: Loader, policy: Policy, tags: tuple[str, ...]
    ) -> None:
        if key in self._inflight:
            return

        async def refresh() -> None:
            try:
                await self._single_flight(upstream, key, load, policy, tags)
                self.count(upstream, "refreshed")
            except UpstreamError as exc:
                logger.info(
                    "background refresh failed; serving stale data",
                    extra={"upstream": upstream, "code": exc.code},
                )

        # The refresh belongs to no request: it must not add warnings to the current one.
        task = asyncio.get_running_loop().create_task(refresh(), context=_detached())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    def _warn(upstream: str, entry: Stored, exc: UpstreamError) -> None:
        warn_stale(upstream, time.time() - entry.stored_at, f"failed ({exc.code})")


def _detached() -> contextvars.Context:
    context = contextvars.copy_context()
    context.run(_warnings.set, None)
    context.run(_trace.set, None)
    return context
