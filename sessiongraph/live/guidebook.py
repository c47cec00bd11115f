"""A guide's session changes: told by the gateway's own mutations and Guidebook's webhooks, or
found by polling the guide within the daily quota when no webhook is configured."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import NotFound, UpstreamError
from ..providers.guidebook import GuidebookProvider, GuidebookSessionRecord, SessionQuery
from ._failures import PollFailures, RateLimits
from ._hub import Event, Feed, Hub

__all__ = ["ChangeKind", "GuidebookChange", "GuidebookChanges"]

logger = logging.getLogger("sessiongraph.live")

# Polling may spend at most this share of the daily quota, spread over the day's seconds.
POLL_QUOTA_SHARE = 0.25
_SESSION_EVENTS = {
    "Builder-SessionCreated",
    "Builder-SessionUpdated",
    "Builder-SessionDeleted",
}


class ChangeKind(Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class GuidebookChange:
    kind: ChangeKind
    guide_id: int
    session_id: int
    # The session as it is after the change (None once deleted).
    session: GuidebookSessionRecord | None


@dataclass
class _Guide:
    """One guide's feed: the sessions it knows, and what it was told to look at again."""

    provider: GuidebookProvider
    known: dict[int, GuidebookSessionRecord]
    wake: asyncio.Queue[int | None]


class GuidebookChanges:
    def __init__(self, hub: Hub, *, poll: bool, poll_seconds: float, daily_quota: int = 0) -> None:
        self.hub = hub
        self.poll = poll
        self.poll_seconds = poll_seconds
        self.daily_quota = daily_quota
        self._guides: dict[tuple[str, int], _Guide] = {}
        self.sleep: Callable[[float], Any] = asyncio.sleep

    def interval(self) -> float:
        if self.daily_quota <= 0:
            return self.poll_seconds
        polled = max(1, len(self._guides))
        return max(self.poll_seconds, polled * 86400 / (self.daily_quota * POLL_QUOTA_SHARE))

    # --- told -------------------------------------------------------------------------------

    def told(self, guide_id: int | None, session_id: int | None = None) -> None:
        """Something changed in a guide (None: any guide): its feeds look again, at that session
        (None: the whole guide). Cheap and synchronous, for webhook listeners and mutations."""
        for (_, guide), state in list(self._guides.items()):
            if guide_id is None or guide == guide_id:
                state.wake.put_nowait(session_id)

    async def webhook(self, event: str, guide_id: int | None, session_id: int | None) -> None:
        """A `GuidebookProvider.change_listeners` entry (called after the stale reads dropped)."""
        self.told(guide_id, session_id if event in _SESSION_EVENTS else None)

    # --- subscribed -------------------------------------------------------------------------

    async def changes(
        self, provider: GuidebookProvider, guide_id: int
    ) -> AsyncIterator[GuidebookChange]:
        if await provider.guide(guide_id) is None:
            raise NotFound(f"no guide with id {guide_id}")
        key = (provider.client.cache_scope, guide_id)
        async for event in self.hub.subscribe(
            ("guidebook", *key), lambda feed: self._produce(provider, key, feed)
        ):
            yield event.value

    async def _produce(
        self, provider: GuidebookProvider, key: tuple[str, int], feed: Feed[Any]
    ) -> None:
        guide_id = key[1]
        state = _Guide(provider, {}, asyncio.Queue())
        self._guides[key] = state
        sequence = 0

        def publish(change: GuidebookChange) -> None:
            nonlocal sequence
            sequence += 1
            feed.publish(Event(change, (sequence,), str(sequence)))

        try:
            state.known = await self._sessions(provider, guide_id)
            feed.mark_ready()
            # A spent daily quota or a revoked key ends the feed: the subscribers learn it, coded.
            failures = PollFailures(RateLimits.END)
            while True:
                told = await self._next(state)
                try:
                    for change in await self._look(state, guide_id, told):
                        publish(change)
                    failures.succeeded()
                except UpstreamError as exc:
                    failures.failed(exc)
        finally:
            if self._guides.get(key) is state:
                del self._guides[key]

    async def _next(self, state: _Guide) -> set[int | None]:
        """What to look at next: told sessions (None: everything), or everything once the poll
        interval passes when polling."""
        if self.poll:
            try:
                async with asyncio.timeout(self.interval() * random.uniform(0.9, 1.1)):
                    first = await state.wake.get()
            except TimeoutError:
                first = None
        else:
            first = await state.wake.get()
        told = {first}
        while not state.wake.empty():
            told.add(state.wake.get_nowait())
        return told

    async def _look(
        self, state: _Guide, guide_id: int, told: set[int | None]
    ) -> list[GuidebookChange]:
        if None in told:
            current = await self._sessions(state.provider, guide_id)
            ids = set(current) | set(state.known)
        else:
            ids = {i for i in told if i is not None}
            current = dict(state.known)
            for session_id in ids:
                found = await state.provider.session(session_id)
                if found is not None and found.guide == guide_id:
                    current[session_id] = found
                else:
                    current.pop(session_id, None)
        changes = []
        for session_id in sorted(ids):
            before, after = state.known.get(session_id), current.get(session_id)
            if before == after:
                continue
            if before is None:
                kind = ChangeKind.CREATED
            elif after is None:
                kind = ChangeKind.DELETED
            else:
                kind = ChangeKind.UPDATED
            changes.append(GuidebookChange(kind, guide_id, session_id, after))
        state.known = current
        return changes

    @staticmethod
    async def _sessions(
        provider: GuidebookProvider, guide_id: int
    ) -> dict[int, GuidebookSessionRecord]:
        page = await provider.sessions(SessionQuery(guide=guide_id))
        return {record.id: record for record in page.records}
