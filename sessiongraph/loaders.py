"""Per-request DataLoaders: batch and deduplicate provider reads within one GraphQL request.

Built in `get_context` for every request, so nothing cached here outlives the request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from aiodataloader import DataLoader

from .errors import SessionGraphError
from .filtering import FilterSpec
from .metrics import DATALOADER_BATCH_SIZE
from .providers import Providers
from .providers.openf1 import F1SessionRecord, MeetingRecord

__all__ = ["Loaders"]

SessionsOfMeetingKey = tuple[int, FilterSpec]
# Session rows copy these from their meeting (reference openf1.md §1.2), so a condition on
# one of them selects a meeting exactly when it selects all of that meeting's sessions.
# gmt_offset is not among them: it can differ within a meeting across a DST change.
MEETING_FIELDS_ON_SESSIONS = frozenset(
    {
        "meeting_key",
        "year",
        "country_key",
        "country_code",
        "country_name",
        "circuit_key",
        "circuit_short_name",
        "location",
    }
)


def shared_conditions(spec: FilterSpec) -> FilterSpec | None:
    """The part of a meeting (or session) filter that also selects sessions (or meetings).

    None when the filter narrows only on other fields: prefetching would then read everything.
    """
    shared = tuple((f, c) for f, c in spec if f in MEETING_FIELDS_ON_SESSIONS)
    return shared if shared or not spec else None


K = TypeVar("K")
V = TypeVar("V")


class CachedLoader(DataLoader[K, V]):
    """A DataLoader that hands out values it already holds without a trip through the loop.

    Nested lists resolve the same primed keys hundreds of times per request; awaiting a
    finished future for each costs more than the rest of the field's work together.
    """

    def __init__(self, batch_load_fn: Any, *, batch: bool) -> None:
        self._futures: dict[Any, asyncio.Future[Any]] = {}
        super().__init__(batch_load_fn, batch=batch, cache_map=self._futures)

    def get(self, key: K) -> V | Awaitable[V]:
        future = self._futures.get(key)
        if (
            future is not None
            and future.done()
            and not future.cancelled()
            and future.exception() is None
        ):
            value: V = future.result()
            return value
        return self.load(key)


class Loaders:
    """The loaders of one request. `batching=False` exists to measure what batching saves."""

    def __init__(self, providers: Providers, *, batching: bool = True) -> None:
        self._providers = providers
        self._batching = batching
        self.meeting: CachedLoader[int, MeetingRecord | None] = CachedLoader(
            self._load_meetings, batch=batching
        )
        self.f1_session: CachedLoader[int, F1SessionRecord | None] = CachedLoader(
            self._load_f1_sessions, batch=batching
        )
        self.f1_sessions_of_meeting: DataLoader[SessionsOfMeetingKey, list[F1SessionRecord]] = (
            DataLoader(self._load_f1_sessions_of_meetings, batch=batching)
        )

    @property
    def merges_requests(self) -> bool:
        return self._batching

    async def meetings_with_sessions(
        self, spec: FilterSpec, session_specs: Iterable[FilterSpec]
    ) -> list[MeetingRecord]:
        """Meetings, with the sessions the query will ask of them fetched at the same time.

        Sessions carry their meeting's year, country, circuit and key, so they need not wait
        for the meetings' keys: both requests run together and the critical path halves.
        """
        openf1 = self._providers.openf1
        shared = shared_conditions(spec) if self._batching else None
        plans = [
            (session_spec, shared + session_spec)
            for session_spec in dict.fromkeys(session_specs)
            if shared is not None and not {f for f, _ in shared} & {f for f, _ in session_spec}
        ]
        sessions_tasks = [asyncio.ensure_future(openf1.sessions(combined)) for _, combined in plans]
        try:
            meetings = await openf1.meetings(spec)
            session_lists = await asyncio.gather(*sessions_tasks, return_exceptions=True)
        finally:
            for task in sessions_tasks:
                task.cancel()
        self.prime_meetings(meetings)
        for (session_spec, _), sessions in zip(plans, session_lists, strict=True):
            if isinstance(sessions, BaseException):
                # A failed prefetch primes nothing: each meeting's `sessions` field then
                # loads on its own and reports the error at its own path.
                continue
            by_meeting: dict[int, list[F1SessionRecord]] = defaultdict(list)
            for session in sessions:
                by_meeting[session.meeting_key].append(session)
            for meeting in meetings:
                key = (meeting.meeting_key, session_spec)
                self.f1_sessions_of_meeting.prime(key, by_meeting.get(meeting.meeting_key, []))
            self.prime_f1_sessions(sessions)
        return meetings

    async def sessions_with_meetings(
        self, spec: FilterSpec, meetings_selected: bool
    ) -> list[F1SessionRecord]:
        """Sessions, with their meetings fetched alongside when the query asks for them."""
        openf1 = self._providers.openf1
        shared = shared_conditions(spec) if self._batching and meetings_selected else None
        if shared is None:
            sessions = await openf1.sessions(spec)
        else:
            meetings_task = asyncio.ensure_future(openf1.meetings(shared))
            try:
                sessions = await openf1.sessions(spec)
                with contextlib.suppress(SessionGraphError):
                    self.prime_meetings(await meetings_task)
            finally:
                meetings_task.cancel()
        self.prime_f1_sessions(sessions)
        return sessions

    def prime_meetings(self, records: Iterable[MeetingRecord]) -> None:
        for record in records:
            self.meeting.prime(record.meeting_key, record)

    def prime_f1_sessions(self, records: Iterable[F1SessionRecord]) -> None:
        for record in records:
            self.f1_session.prime(record.session_key, record)

    async def _load_meetings(self, keys: list[int]) -> list[MeetingRecord | None]:
        DATALOADER_BATCH_SIZE.labels("openf1.meeting").observe(len(keys))
        found = {r.meeting_key: r for r in await self._providers.openf1.meetings_by_key(keys)}
        return [found.get(key) for key in keys]

    async def _load_f1_sessions(self, keys: list[int]) -> list[F1SessionRecord | None]:
        DATALOADER_BATCH_SIZE.labels("openf1.session").observe(len(keys))
        found = {r.session_key: r for r in await self._providers.openf1.sessions_by_key(keys)}
        return [found.get(key) for key in keys]

    async def _load_f1_sessions_of_meetings(
        self, keys: list[SessionsOfMeetingKey]
    ) -> list[list[F1SessionRecord]]:
        DATALOADER_BATCH_SIZE.labels("openf1.sessions_of_meeting").observe(len(keys))
        # One upstream request (or URL-sized chunk) per distinct filter, all in flight together.
        meetings_by_spec: dict[FilterSpec, list[int]] = defaultdict(list)
        for meeting_key, spec in keys:
            meetings_by_spec[spec].append(meeting_key)
        specs = list(meetings_by_spec)
        results = await asyncio.gather(
            *(self._providers.openf1.sessions_by_meeting(meetings_by_spec[s], s) for s in specs)
        )
        grouped: dict[SessionsOfMeetingKey, list[F1SessionRecord]] = defaultdict(list)
        for spec, records in zip(specs, results, strict=True):
            for record in records:
                grouped[(record.meeting_key, spec)].append(record)
            if not spec:
                self.prime_f1_sessions(records)
        return [grouped.get(key, []) for key in keys]
