"""Per-request DataLoaders: batch and deduplicate provider reads within one GraphQL request.

Built in `get_context` for every request, so nothing cached here outlives the request.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable

from aiodataloader import DataLoader

from .filtering import FilterSpec
from .providers import Providers
from .providers.openf1 import F1SessionRecord, MeetingRecord

__all__ = ["Loaders"]

SessionsOfMeetingKey = tuple[int, FilterSpec]


class Loaders:
    """The loaders of one request. `batching=False` exists to measure what batching saves."""

    def __init__(self, providers: Providers, *, batching: bool = True) -> None:
        self._providers = providers
        self.meeting: DataLoader[int, MeetingRecord | None] = DataLoader(
            self._load_meetings, batch=batching
        )
        self.f1_session: DataLoader[int, F1SessionRecord | None] = DataLoader(
            self._load_f1_sessions, batch=batching
        )
        self.f1_sessions_of_meeting: DataLoader[SessionsOfMeetingKey, list[F1SessionRecord]] = (
            DataLoader(self._load_f1_sessions_of_meetings, batch=batching)
        )

    def prime_meetings(self, records: Iterable[MeetingRecord]) -> None:
        for record in records:
            self.meeting.prime(record.meeting_key, record)

    def prime_f1_sessions(self, records: Iterable[F1SessionRecord]) -> None:
        for record in records:
            self.f1_session.prime(record.session_key, record)

    async def _load_meetings(self, keys: list[int]) -> list[MeetingRecord | None]:
        found = {r.meeting_key: r for r in await self._providers.openf1.meetings_by_key(keys)}
        return [found.get(key) for key in keys]

    async def _load_f1_sessions(self, keys: list[int]) -> list[F1SessionRecord | None]:
        found = {r.session_key: r for r in await self._providers.openf1.sessions_by_key(keys)}
        return [found.get(key) for key in keys]

    async def _load_f1_sessions_of_meetings(
        self, keys: list[SessionsOfMeetingKey]
    ) -> list[list[F1SessionRecord]]:
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
