"""Per-request DataLoaders: batch and deduplicate provider reads within one GraphQL request.

Built in `get_context` for every request, so nothing cached here outlives the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import operator
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any, TypeVar, cast

from aiodataloader import DataLoader

from .errors import SessionGraphError
from .filtering import FilterSpec
from .metrics import DATALOADER_BATCH_SIZE
from .providers import Providers
from .providers.guidebook import (
    GuidebookProvider,
    GuidebookSessionRecord,
    GuideRecord,
    LocationRecord,
    ScheduleTrackRecord,
    SessionQuery,
)
from .providers.openf1 import (
    SESSION_COLLECTIONS,
    F1SessionRecord,
    MeetingRecord,
)
from .providers.openf1_telemetry import TelemetryKind, TelemetrySeries
from .providers.sqlrace import (
    ConnectionRecord,
    LapRecord,
    ParameterRecord,
    SessionDetailRecord,
    SqlRaceProvider,
    SqlRaceSessionRecord,
)

__all__ = ["Loaders"]

SessionsOfMeetingKey = tuple[int, FilterSpec]
# (session key, filter on the collection's rows): the rows of one per-session collection.
SessionDataKey = tuple[int, FilterSpec]
TELEMETRY_CONCURRENCY = 4
# (kind, session key, driver number, window start, window end)
TelemetryKey = tuple[TelemetryKind, int, int, datetime | None, datetime | None]
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


def key_chunks(keys: list[int], field: str, budget: int) -> list[list[int]]:
    """Keys split as the provider splits repeated `field=key` parameters to fit `budget`
    characters, so each chunk is one upstream request."""
    chunks: list[list[int]] = []
    current: list[int] = []
    length = 0
    for key in dict.fromkeys(keys):
        size = len(f"{field}={key}") + 1
        if current and length + size > budget:
            chunks.append(current)
            current, length = [], 0
        current.append(key)
        length += size
    if current:
        chunks.append(current)
    return chunks


K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


async def load_grouped(
    keys: list[tuple[int, FilterSpec]],
    read: Callable[[list[int], FilterSpec], Awaitable[list[R]]],
    owner: Callable[[R], int],
) -> list[Any]:
    """Rows for (owner key, filter) pairs: one upstream read per distinct filter, all in flight
    together, grouped by `owner`. Each key gets its rows or the exception of its read, which
    aiodataloader raises for that key alone, so a failure nulls only the fields that needed it."""
    owners_by_spec: dict[FilterSpec, list[int]] = defaultdict(list)
    for owner_key, spec in keys:
        owners_by_spec[spec].append(owner_key)
    specs = list(owners_by_spec)
    results = await asyncio.gather(
        *(read(owners_by_spec[s], s) for s in specs), return_exceptions=True
    )
    grouped: dict[tuple[int, FilterSpec], list[R] | BaseException] = {}
    for spec, records in zip(specs, results, strict=True):
        if isinstance(records, BaseException):
            grouped.update({(k, spec): records for k in owners_by_spec[spec]})
            continue
        for record in records:
            value = grouped.setdefault((owner(record), spec), [])
            if isinstance(value, list):
                value.append(record)
    return [grouped.get(key, []) for key in keys]


class CachedLoader(DataLoader[K, V]):
    """A DataLoader that hands out values it already holds without a trip through the loop.

    Nested lists resolve the same primed keys hundreds of times per request; awaiting a
    finished future for each costs more than the rest of the field's work together.
    """

    def __init__(self, batch_load_fn: Any, *, batch: bool) -> None:
        self._futures: dict[Any, asyncio.Future[Any]] = {}
        # Primed values as they are: a season primes hundreds of records, and a finished
        # future for each costs more than the lookups that use them.
        self._primed: dict[Any, Any] = {}
        super().__init__(batch_load_fn, batch=batch, cache_map=self._futures)

    def prime(self, key: K, value: V) -> CachedLoader[K, V]:
        if isinstance(value, Exception) or key in self._futures:
            super().prime(key, value)
        else:
            self._primed.setdefault(key, value)
        return self

    def load(self, key: K) -> asyncio.Future[V]:
        if key in self._primed and key not in self._futures:
            # A caller that awaits gets a finished future, made only now.
            super().prime(key, self._primed[key])
        return super().load(key)

    def clear(self, key: K) -> CachedLoader[K, V]:
        self._primed.pop(key, None)
        super().clear(key)
        return self

    def clear_all(self) -> CachedLoader[K, V]:
        self._primed.clear()
        super().clear_all()
        return self

    def get(self, key: K) -> V | Awaitable[V]:
        if key in self._primed:
            primed: V = self._primed[key]
            return primed
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
        # Types this request built from records, by record (schema.records.made_once).
        self.types: dict[Any, Any] = {}
        # Per-session collections, made when a query first needs one: each batch of
        # sessions costs one request per collection.
        self._session_loaders: dict[type[Any], DataLoader[SessionDataKey, list[Any]]] = {}
        self._telemetry: DataLoader[TelemetryKey, TelemetrySeries] | None = None

    # Made when a query first needs them: most queries touch one upstream, and a
    # subscription event that is shared executes with the loaders of one subscriber only.
    @functools.cached_property
    def meeting(self) -> CachedLoader[int, MeetingRecord | None]:
        return CachedLoader(self._load_meetings, batch=self._batching)

    @functools.cached_property
    def f1_session(self) -> CachedLoader[int, F1SessionRecord | None]:
        return CachedLoader(self._load_f1_sessions, batch=self._batching)

    @functools.cached_property
    def f1_sessions_of_meeting(self) -> DataLoader[SessionsOfMeetingKey, list[F1SessionRecord]]:
        return DataLoader(self._load_f1_sessions_of_meetings, batch=self._batching)

    @functools.cached_property
    def sqlrace(self) -> SqlRaceLoaders:
        return SqlRaceLoaders(self._providers.sqlrace, batching=self._batching)

    @functools.cached_property
    def guidebook(self) -> GuidebookLoaders:
        return GuidebookLoaders(self._providers.guidebook, batching=self._batching)

    @property
    def merges_requests(self) -> bool:
        return self._batching

    def release(self) -> None:
        """Forget what this request loaded, once its answer is made, so none of it waits for
        the garbage collector, whose passes every later request pays for (~3 ms each over a
        race's columns)."""
        # Each loader holds a function of the object it belongs to: a cycle that only the
        # collector would free. Dropped here, a later use makes a new one.
        self._session_loaders.clear()
        self._telemetry = None
        self.types.clear()
        for name in _MADE_WHEN_NEEDED:
            made = self.__dict__.pop(name, None)
            if isinstance(made, SqlRaceLoaders | GuidebookLoaders):
                made.release()

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

    async def _load_meetings(self, keys: list[int]) -> list[Any]:
        DATALOADER_BATCH_SIZE.labels("openf1.meeting").observe(len(keys))
        return await self._by_key(
            keys, "meetings", "meeting_key", self._providers.openf1.meetings_by_key
        )

    async def _load_f1_sessions(self, keys: list[int]) -> list[Any]:
        DATALOADER_BATCH_SIZE.labels("openf1.session").observe(len(keys))
        return await self._by_key(
            keys, "sessions", "session_key", self._providers.openf1.sessions_by_key
        )

    async def _by_key(
        self,
        keys: list[int],
        collection: str,
        field: str,
        read: Callable[[list[int]], Awaitable[list[Any]]],
    ) -> list[Any]:
        """Records by key in as few requests as fit the URL limit; a failed request fails
        only the keys it carried (its exception is their value), not the other chunks'."""
        openf1 = self._providers.openf1
        budget = openf1.max_url_length - len(str(openf1.client.url(collection))) - 1
        chunks = key_chunks(keys, field, budget)
        results = await asyncio.gather(*(read(chunk) for chunk in chunks), return_exceptions=True)
        found: dict[int, Any] = {}
        for chunk, records in zip(chunks, results, strict=True):
            if isinstance(records, BaseException):
                found.update(dict.fromkeys(chunk, records))
                continue
            for record in records:
                found[getattr(record, field)] = record
        return [found.get(key) for key in keys]

    async def _load_f1_sessions_of_meetings(self, keys: list[SessionsOfMeetingKey]) -> list[Any]:
        DATALOADER_BATCH_SIZE.labels("openf1.sessions_of_meeting").observe(len(keys))

        async def read(meeting_keys: list[int], spec: FilterSpec) -> list[F1SessionRecord]:
            records = await self._providers.openf1.sessions_by_meeting(meeting_keys, spec)
            if not spec:
                self.prime_f1_sessions(records)
            return records

        return await load_grouped(keys, read, operator.attrgetter("meeting_key"))

    def telemetry(self) -> DataLoader[TelemetryKey, TelemetrySeries]:
        """One request per (kind, session, driver, window); identical ones in a query shared."""
        if self._telemetry is None:
            openf1 = self._providers.openf1

            # A whole race of one car is megabytes of JSON until it becomes columns: a few at
            # a time keep the memory of a query for every car bounded.
            gate = asyncio.Semaphore(TELEMETRY_CONCURRENCY)

            async def one(key: TelemetryKey) -> TelemetrySeries:
                async with gate:
                    return await openf1.telemetry(*key)

            async def load(keys: list[TelemetryKey]) -> list[Any]:
                found = await asyncio.gather(*(one(key) for key in keys), return_exceptions=True)
                return list(found)

            self._telemetry = DataLoader(load, batch=self._batching)
        return self._telemetry

    def session_rows(self, cls: type[R]) -> DataLoader[SessionDataKey, list[R]]:
        """The loader of the per-session collection of `cls` (a key of SESSION_COLLECTIONS)."""
        found = self._session_loaders.get(cls)
        if found is None:
            found = self._session_loaders[cls] = self._session_data(cls)
        return found

    def _session_data(self, cls: type[R]) -> DataLoader[SessionDataKey, list[R]]:
        label = f"openf1.{SESSION_COLLECTIONS[cls]}"

        async def load(keys: list[SessionDataKey]) -> list[Any]:
            DATALOADER_BATCH_SIZE.labels(label).observe(len(keys))
            return await load_grouped(
                keys,
                lambda sessions, spec: self._providers.openf1.session_data(cls, sessions, spec),
                operator.attrgetter("session_key"),
            )

        return DataLoader(load, batch=self._batching)


# --- SQL Race -----------------------------------------------------------------------------------

SessionPageKey = tuple[str, int]  # (connection name, 0-based page)
SessionRef = tuple[str, str]  # (connection name, session key)


# Loaders.release() drops these so each loader's bound method no longer keeps a cycle.
_MADE_WHEN_NEEDED = tuple(
    name for name, value in vars(Loaders).items() if isinstance(value, functools.cached_property)
)


class SqlRaceLoaders:
    """SQL Race reads of one request, each deduplicated; the upstream has no batch reads, so a
    batch becomes concurrent requests, capped by the provider."""

    def __init__(self, provider: SqlRaceProvider | None, *, batching: bool) -> None:
        self._provider = provider
        self._connections: asyncio.Future[list[ConnectionRecord]] | None = None
        self.connection: DataLoader[str, ConnectionRecord | None] = DataLoader(
            self._each(lambda p, name: p.connection(name)), batch=batching
        )
        self.session_page: DataLoader[SessionPageKey, list[SqlRaceSessionRecord | None]] = (
            DataLoader(self._each(lambda p, key: p.sessions_page(*key)), batch=batching)
        )
        self.details: DataLoader[SessionRef, list[SessionDetailRecord]] = DataLoader(
            self._each(lambda p, ref: p.details(*ref)), batch=batching
        )
        self.laps: DataLoader[SessionRef, list[LapRecord]] = DataLoader(
            self._each(lambda p, ref: p.laps(*ref)), batch=batching
        )
        self.parameters: DataLoader[SessionRef, list[ParameterRecord]] = DataLoader(
            self._each(lambda p, ref: p.parameters(*ref)), batch=batching
        )

    def release(self) -> None:
        """Drop the loaders, whose functions refer back to this object; it is not used again."""
        vars(self).clear()

    @property
    def provider(self) -> SqlRaceProvider:
        if self._provider is None:
            raise RuntimeError("SQL Race is not configured")  # resolvers check this first
        return self._provider

    async def connections(self) -> list[ConnectionRecord]:
        """The connection list, read once per request; it primes `connection` too."""
        if self._connections is None:
            self._connections = asyncio.ensure_future(self.provider.connections())
        records = await asyncio.shield(self._connections)
        for record in records:
            self.connection.prime(record.name, record)
        return records

    async def sessions(
        self, connection: str, start: int = 0
    ) -> AsyncIterator[tuple[int, SqlRaceSessionRecord]]:
        """(position, session) from position `start` on, reading pages only as they are
        needed, until a short page; positions are stable, so they serve as cursors."""
        size = self.provider.page_size
        page, skip = divmod(start, size)
        while True:
            rows = await self.session_page.load((connection, page))
            for offset, record in enumerate(rows[skip:], start=page * size + skip):
                if record is not None:
                    yield offset, record
            if len(rows) < size:
                return
            page, skip = page + 1, 0

    def _each(
        self, read: Callable[[SqlRaceProvider, K], Awaitable[V]]
    ) -> Callable[[list[K]], Coroutine[Any, Any, list[V]]]:
        async def load(keys: list[K]) -> list[V]:
            results = await asyncio.gather(
                *(read(self.provider, key) for key in keys), return_exceptions=True
            )
            # aiodataloader rejects only the keys whose value is an exception, so one failed
            # read fails only its own field.
            return cast(list[V], results)

        return load


# --- Guidebook ----------------------------------------------------------------------------------

TrackOfGuide = tuple[int, int]  # (guide id, schedule track id)
GuidebookRecord = TypeVar(
    "GuidebookRecord", GuideRecord, ScheduleTrackRecord, LocationRecord, GuidebookSessionRecord
)


class GuidebookLoaders:
    """Guidebook reads of one request. Objects by id cost one GET each (no id-list filter
    upstream), so objects below a guide are best reached through their guide's lists."""

    def __init__(self, provider: GuidebookProvider | None, *, batching: bool) -> None:
        self._provider = provider
        self.guide: CachedLoader[int, GuideRecord | None] = CachedLoader(
            self._by_id(lambda p, key: p.guide(key)), batch=batching
        )
        self.schedule_track: CachedLoader[int, ScheduleTrackRecord | None] = CachedLoader(
            self._by_id(lambda p, key: p.schedule_track(key)), batch=batching
        )
        self.location: CachedLoader[int, LocationRecord | None] = CachedLoader(
            self._by_id(lambda p, key: p.location(key)), batch=batching
        )
        self.session: CachedLoader[int, GuidebookSessionRecord | None] = CachedLoader(
            self._by_id(lambda p, key: p.session(key)), batch=batching
        )
        self.tracks_of_guide: CachedLoader[int, list[ScheduleTrackRecord]] = CachedLoader(
            self._load_tracks_of_guides, batch=batching
        )
        self.locations_of_guide: CachedLoader[int, list[LocationRecord]] = CachedLoader(
            self._load_locations_of_guides, batch=batching
        )
        self.sessions_of_track: DataLoader[TrackOfGuide, list[GuidebookSessionRecord]] = DataLoader(
            self._load_sessions_of_tracks, batch=batching
        )

    def release(self) -> None:
        """Drop the loaders, whose functions refer back to this object; it is not used again."""
        vars(self).clear()

    @property
    def provider(self) -> GuidebookProvider:
        if self._provider is None:
            raise RuntimeError("Guidebook is not configured")  # resolvers check this first
        return self._provider

    def prime_sessions(self, records: Iterable[GuidebookSessionRecord]) -> None:
        for record in records:
            self.session.prime(record.id, record)

    def _by_id(
        self,
        read: Callable[[GuidebookProvider, int], Awaitable[GuidebookRecord | None]],
    ) -> Callable[[list[int]], Awaitable[list[GuidebookRecord | BaseException | None]]]:
        async def load(ids: list[int]) -> list[GuidebookRecord | BaseException | None]:
            # No id-list filter upstream: one GET per id, all in flight together. Each id
            # gets its record or its own exception, which fails only that id's field.
            return await asyncio.gather(
                *(read(self.provider, key) for key in ids), return_exceptions=True
            )

        return load

    async def _load_tracks_of_guides(
        self, guides: list[int]
    ) -> list[list[ScheduleTrackRecord] | BaseException]:
        results = await asyncio.gather(
            *(self.provider.schedule_tracks(g) for g in guides), return_exceptions=True
        )
        for records in results:
            for record in records if isinstance(records, list) else ():
                self.schedule_track.prime(record.id, record)
        return results

    async def _load_locations_of_guides(
        self, guides: list[int]
    ) -> list[list[LocationRecord] | BaseException]:
        results = await asyncio.gather(
            *(self.provider.locations(g) for g in guides), return_exceptions=True
        )
        for records in results:
            for record in records if isinstance(records, list) else ():
                self.location.prime(record.id, record)
        return results

    async def _load_sessions_of_tracks(self, keys: list[TrackOfGuide]) -> list[Any]:
        """Each key's sessions, or the exception that fails only that key's field."""
        # Several tracks of one guide: one listing of the guide's sessions, grouped here;
        # a single track: the upstream's `schedule_tracks` filter reads less.
        tracks_by_guide: dict[int, list[int]] = defaultdict(list)
        for guide, track in keys:
            tracks_by_guide[guide].append(track)
        guides = list(tracks_by_guide)
        queries = [
            SessionQuery(g, schedule_track=tracks[0] if len(tracks) == 1 else None)
            for g, tracks in tracks_by_guide.items()
        ]
        pages = await asyncio.gather(
            *(self.provider.sessions(q) for q in queries), return_exceptions=True
        )
        grouped: dict[TrackOfGuide, list[GuidebookSessionRecord] | BaseException] = {}
        for guide, page in zip(guides, pages, strict=True):
            if isinstance(page, BaseException):
                grouped.update({(guide, t): page for t in tracks_by_guide[guide]})
                continue
            self.prime_sessions(page.records)
            for record in page.records:
                for track in record.schedule_tracks:
                    grouped.setdefault((guide, track), [])
                    value = grouped[(guide, track)]
                    if isinstance(value, list):
                        value.append(record)
        return [grouped.get(key, []) for key in keys]
