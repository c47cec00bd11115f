"""SQL Race's live sessions of a connection, by polling `sessions/live` and their laps: one feed
per connection however many subscribe."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import NotFound, UpstreamError
from ..providers.sqlrace import SqlRaceProvider, SqlRaceSessionRecord
from ._failures import PollFailures
from ._hub import Event, Feed, Hub

__all__ = ["LiveSessionChange", "LiveSessionKind", "SqlRaceLive"]


class LiveSessionKind(Enum):
    APPEARED = "APPEARED"
    UPDATED = "UPDATED"
    ENDED = "ENDED"


@dataclass(frozen=True, slots=True)
class LiveSessionChange:
    """A live session appeared, grew (laps, state) or left the live list (`laps` its count)."""

    kind: LiveSessionKind
    session: SqlRaceSessionRecord
    laps: int
    sequence: int


class SqlRaceLive:
    def __init__(self, hub: Hub, provider: SqlRaceProvider, *, poll_seconds: float) -> None:
        self.hub = hub
        self.provider = provider
        self.poll_seconds = poll_seconds
        self.sleep: Callable[[float], Any] = asyncio.sleep

    async def changes(self, connection: str) -> AsyncIterator[LiveSessionChange]:
        """Each live session as it is now (APPEARED), then every change."""
        if await self.provider.connection(connection) is None:
            raise NotFound(f"sqlrace has no connection {connection!r}")
        async for event in self.hub.subscribe(
            ("sqlrace", connection),
            lambda feed: self._produce(connection, feed),
            replay_all=True,
        ):
            yield event.value

    async def _produce(self, connection: str, feed: Feed[Any]) -> None:
        sequence = 0
        known: dict[str, tuple[SqlRaceSessionRecord, int]] = {}

        def change(kind: LiveSessionKind, session: SqlRaceSessionRecord, laps: int) -> Event[Any]:
            nonlocal sequence
            sequence += 1
            value = LiveSessionChange(kind, session, laps, sequence)
            return Event(value, (sequence,), str(sequence))

        async def look() -> list[Event[Any]]:
            sessions = await self.provider.live_sessions(connection)
            counts = await asyncio.gather(
                *(self.provider.live_laps(connection, s.key) for s in sessions),
                return_exceptions=True,
            )
            events = []
            current: dict[str, tuple[SqlRaceSessionRecord, int]] = {}
            for session, laps in zip(sessions, counts, strict=True):
                if isinstance(laps, NotFound):
                    continue  # it stopped between the two reads; the next look says how
                if isinstance(laps, BaseException):
                    raise laps
                current[session.key] = (session, len(laps))
                before = known.get(session.key)
                if before is None:
                    events.append(change(LiveSessionKind.APPEARED, session, len(laps)))
                elif before != (session, len(laps)):
                    events.append(change(LiveSessionKind.UPDATED, session, len(laps)))
            for key, (session, laps_count) in known.items():
                if key not in current:
                    events.append(change(LiveSessionKind.ENDED, session, laps_count))
            known.clear()
            known.update(current)
            return events

        # What is live now is the backlog every subscriber starts from (appeared, with its laps).
        feed.baseline(await look())
        feed.mark_ready()
        failures = PollFailures()
        while True:
            await self.sleep(self.poll_seconds * random.uniform(0.9, 1.1))
            try:
                events = await look()
            except UpstreamError as exc:
                failures.failed(exc)
                continue
            failures.succeeded()
            # The backlog keeps only the newest state of each live session for late joiners.
            for event in events:
                feed.publish(event)
            _compact(feed)


def _compact(feed: Feed[Any]) -> None:
    """The backlog as late joiners need it: each live session once, as it is now."""
    newest: dict[str, Event[Any]] = {}
    for event in feed.backlog:
        change: LiveSessionChange = event.value
        if change.kind is LiveSessionKind.ENDED:
            newest.pop(change.session.key, None)
        else:
            newest[change.session.key] = event
    feed.backlog.clear()
    for event in newest.values():
        value: LiveSessionChange = event.value
        appeared = LiveSessionChange(
            LiveSessionKind.APPEARED, value.session, value.laps, value.sequence
        )
        feed.backlog.append(Event(appeared, event.order, event.cursor))
