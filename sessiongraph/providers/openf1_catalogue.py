"""OpenF1's meetings and sessions as a local, indexed catalogue: reference data that OpenF1
refreshes once a day, loaded whole in two requests and answering every lookup and filter.

The two unfiltered lists are read through the response cache, so workers and machines sharing
Redis load them once; each process keeps the parsed records until the reads' freshness ends.
Freshness follows the data: until the next daily refresh (00:00 UTC) between race weekends,
minutes around one (sessions starting, moving or being cancelled).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson

from ..cache import Freshness, Policy, Stored, note_read, warn_stale
from ..filtering import Condition, FilterSpec, matches
from ..metrics import CATALOGUE_AGE, CATALOGUE_ENTRIES, CATALOGUE_REFRESHES
from .openf1 import F1SessionRecord, MeetingRecord, parse_instant, to_record

__all__ = ["Catalogue", "CatalogueFreshness", "Snapshot"]

RecordT = TypeVar("RecordT", MeetingRecord, F1SessionRecord)
# (rows, when fetched, fresh until) of one unfiltered list.
ListRead = Callable[[str, Policy], Awaitable[tuple[list[Any], float, float]]]

# OpenF1 resolves `latest` to the last session started by now + 60 s (reference §2).
_LATEST_HORIZON = timedelta(seconds=60)
# Around a session's start the catalogue cannot tell which session OpenF1 calls latest
# (clocks differ, starts move): such lookups go upstream.
_UNCERTAIN = timedelta(minutes=5)
# After a failed or stale refresh, the next attempt waits this long (the data is served).
_RETRY_SECONDS = 15.0


@dataclass(frozen=True)
class CatalogueFreshness:
    """How long the lists stay fresh, by what they hold (reference §3 data latency)."""

    settled_seconds: float = 6 * 3600
    live_seconds: float = 300
    stale_seconds: float = 300
    # A weekend is "live" from a day before a session starts until a few hours after it ends.
    lead: timedelta = timedelta(hours=24)
    tail: timedelta = timedelta(hours=3)
    # OpenF1 rebuilds meetings and sessions daily at 00:00 UTC; a few minutes' grace.
    daily_refresh_grace: timedelta = timedelta(minutes=10)

    def seconds(self, sessions: Sequence[Any], now: datetime) -> float:
        for row in sessions:
            start = parse_instant(row.get("date_start")) if isinstance(row, dict) else None
            if start is None:
                continue
            end = parse_instant(row.get("date_end")) or start
            if start - self.lead <= now <= end + self.tail:
                return self.live_seconds
        tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        until_refresh = (tomorrow + self.daily_refresh_grace - now).total_seconds()
        return max(self.live_seconds, min(self.settled_seconds, until_refresh))


@dataclass
class Snapshot:
    """Both lists parsed and indexed, in OpenF1's own order."""

    meetings: list[MeetingRecord]
    sessions: list[F1SessionRecord]
    fetched_at: float
    fresh_until: float
    meeting_by_key: dict[int, MeetingRecord] = field(init=False)
    session_by_key: dict[int, F1SessionRecord] = field(init=False)
    sessions_of: dict[int, list[F1SessionRecord]] = field(init=False)
    # Non-cancelled sessions by start, for `latest`.
    started: list[F1SessionRecord] = field(init=False)

    def __post_init__(self) -> None:
        self.meeting_by_key = {m.meeting_key: m for m in self.meetings}
        self.session_by_key = {s.session_key: s for s in self.sessions}
        self.sessions_of = {}
        for session in self.sessions:
            self.sessions_of.setdefault(session.meeting_key, []).append(session)
        self.started = sorted(
            (s for s in self.sessions if s.date_start is not None and not s.is_cancelled),
            key=lambda s: s.date_start or datetime.min.replace(tzinfo=UTC),
        )

    def latest(self, now: datetime) -> tuple[bool, F1SessionRecord | None]:
        """(certain, OpenF1's `latest` session): not certain while a start is near, when
        only OpenF1 can tell; None when no session has started."""
        horizon = now + _LATEST_HORIZON
        latest: F1SessionRecord | None = None
        for session in self.started:
            assert session.date_start is not None
            if abs(session.date_start - horizon) <= _UNCERTAIN:
                return False, None
            if session.date_start <= horizon:
                latest = session
        return True, latest


class Catalogue:
    """Answers meeting and session lookups locally; None means "ask OpenF1" (only `latest`
    while a session is starting)."""

    def __init__(
        self,
        read: ListRead,
        freshness: CatalogueFreshness | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._read = read
        self.freshness = freshness or CatalogueFreshness()
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._next_check = 0.0
        self._loading: asyncio.Task[Snapshot] | None = None
        self.refreshes = 0
        self.failed_refreshes = 0

    # --- the lookups --------------------------------------------------------------------------

    async def meetings(self, spec: FilterSpec) -> list[MeetingRecord] | None:
        snapshot = await self.snapshot()
        resolved = self._resolve_latest(snapshot, spec)
        if resolved is None:
            return None
        return _matching(snapshot.meetings, resolved)

    async def sessions(self, spec: FilterSpec) -> list[F1SessionRecord] | None:
        snapshot = await self.snapshot()
        resolved = self._resolve_latest(snapshot, spec)
        if resolved is None:
            return None
        return _matching(snapshot.sessions, resolved)

    async def meetings_by_key(self, keys: Sequence[int]) -> list[MeetingRecord]:
        snapshot = await self.snapshot()
        found = (snapshot.meeting_by_key.get(k) for k in dict.fromkeys(keys))
        return [m for m in found if m is not None]

    async def sessions_by_key(self, keys: Sequence[int]) -> list[F1SessionRecord]:
        snapshot = await self.snapshot()
        found = (snapshot.session_by_key.get(k) for k in dict.fromkeys(keys))
        return [s for s in found if s is not None]

    async def sessions_by_meeting(
        self, meeting_keys: Sequence[int], spec: FilterSpec
    ) -> list[F1SessionRecord] | None:
        snapshot = await self.snapshot()
        resolved = self._resolve_latest(snapshot, spec)
        if resolved is None:
            return None
        rows = [s for k in dict.fromkeys(meeting_keys) for s in snapshot.sessions_of.get(k, ())]
        return _matching(rows, resolved)

    async def all_settled(self, session_keys: Sequence[int], after: timedelta) -> bool:
        """Whether every one of these sessions ended more than `after` ago (their data is
        final but for rare backfills), as far as the catalogue knows."""
        snapshot = await self.snapshot()
        horizon = self._clock() - after
        for key in session_keys:
            session = snapshot.session_by_key.get(key)
            end = session.date_end or session.date_start if session is not None else None
            if end is None or end > horizon:
                return False
        return bool(session_keys)

    def _resolve_latest(self, snapshot: Snapshot, spec: FilterSpec) -> FilterSpec | None:
        """`latest` on a key becomes that key, as OpenF1 resolves it; None if uncertain."""
        if not any(condition.latest for _, condition in spec):
            return spec
        certain, latest = snapshot.latest(self._clock())
        if not certain:
            return None
        resolved: list[tuple[str, Condition]] = []
        for name, condition in spec:
            if not condition.latest:
                resolved.append((name, condition))
                continue
            key = None
            if latest is not None:
                key = latest.session_key if name == "session_key" else latest.meeting_key
            # No session at all: OpenF1 finds nothing, and neither does an impossible key.
            resolved.append((name, Condition(eq=key if key is not None else -1)))
            rest = replace(condition, latest=False)
            if not rest.is_empty:
                resolved.append((name, rest))
        return tuple(resolved)

    # --- keeping it -------------------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        """The current lists; the request's answer is marked as fresh as they are."""
        now = time.time()
        snapshot = self._snapshot
        if snapshot is None or now >= self._next_check:
            snapshot = await self._refreshed(snapshot)
        note_read(snapshot.fresh_until, ("meetings", "sessions"))
        if snapshot.fresh_until <= time.time():
            warn_stale("openf1", time.time() - snapshot.fetched_at, "is not answering")
        return snapshot

    async def _refreshed(self, current: Snapshot | None) -> Snapshot:
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load(current))
            self._loading.add_done_callback(self._loaded)
        try:
            # shield: a request that gives up must not cancel the load the others wait on.
            return await asyncio.shield(self._loading)
        except Exception:
            if current is None:
                raise
            return current

    def _loaded(self, task: asyncio.Task[Snapshot]) -> None:
        self._loading = None
        if task.cancelled() or task.exception() is not None:
            self.failed_refreshes += 1
            CATALOGUE_REFRESHES.labels("failed").inc()
            self._next_check = time.time() + _RETRY_SECONDS

    async def _load(self, current: Snapshot | None) -> Snapshot:
        policy = self._policy()
        (meetings, m_at, m_until), (sessions, s_at, s_until) = await asyncio.gather(
            self._read("meetings", policy), self._read("sessions", policy)
        )
        fetched_at, fresh_until = min(m_at, s_at), min(m_until, s_until)
        if current is not None and (current.fetched_at, current.fresh_until) == (
            fetched_at,
            fresh_until,
        ):
            snapshot = current  # the same reads (e.g. stale ones): nothing to parse again
        else:
            snapshot = Snapshot(
                [r for r in map(_record(MeetingRecord), meetings) if r is not None],
                [r for r in map(_record(F1SessionRecord), sessions) if r is not None],
                fetched_at,
                fresh_until,
            )
            self.refreshes += 1
            CATALOGUE_REFRESHES.labels("loaded").inc()
        self._snapshot = snapshot
        # Stale reads (the upstream failing) are retried after a pause, not per request.
        now = time.time()
        self._next_check = fresh_until if fresh_until > now else now + _RETRY_SECONDS
        CATALOGUE_ENTRIES.labels("meetings").set(len(snapshot.meetings))
        CATALOGUE_ENTRIES.labels("sessions").set(len(snapshot.sessions))
        CATALOGUE_AGE.set(time.time() - snapshot.fetched_at)
        return snapshot

    def _policy(self) -> Policy:
        freshness = self.freshness

        def policy(stored: Stored) -> Freshness | None:
            if stored.status != 200:
                return None
            try:
                rows = orjson.loads(stored.body)
            except orjson.JSONDecodeError:
                return None
            if not isinstance(rows, list):
                return None
            return Freshness(freshness.seconds(rows, self._clock()), freshness.stale_seconds)

        return policy

    def status(self) -> dict[str, Any]:
        """For /readyz: what is loaded, how old, how often refreshed."""
        snapshot = self._snapshot
        if snapshot is None:
            return {
                "loaded": False,
                "refreshes": self.refreshes,
                "failedRefreshes": self.failed_refreshes,
            }
        now = time.time()
        CATALOGUE_AGE.set(now - snapshot.fetched_at)
        return {
            "loaded": True,
            "meetings": len(snapshot.meetings),
            "sessions": len(snapshot.sessions),
            "ageSeconds": round(now - snapshot.fetched_at, 1),
            "freshForSeconds": round(max(0.0, snapshot.fresh_until - now), 1),
            "refreshes": self.refreshes,
            "failedRefreshes": self.failed_refreshes,
        }


def _record(cls: type[RecordT]) -> Callable[[Any], RecordT | None]:
    return lambda row: to_record(cls, row)


def _matching(records: list[RecordT], spec: FilterSpec) -> list[RecordT]:
    if any(condition.unsatisfiable() for _, condition in spec):
        return []
    return [r for r in records if matches(r, spec)]
