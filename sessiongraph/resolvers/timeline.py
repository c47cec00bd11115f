"""The cross-source timeline: sessions of every source overlapping a window, merged by start.

Pages are keyset pages: a cursor is the (start, source, key) position of the last item, so
each source is asked only for what lies after it, and the next page continues exactly.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from ..errors import BadUserInput, SessionGraphError
from ..filtering import Condition
from ..providers.guidebook import GuidebookSessionRecord, GuideRecord, SessionQuery
from ..providers.openf1 import F1SessionRecord
from ..providers.sqlrace import SqlRaceSessionRecord
from ..schema.context import Info
from ..schema.reported import report
from ..schema.scalars import in_utc_range

__all__ = [
    "DEFAULT_FIRST",
    "MAX_FIRST",
    "SOURCES",
    "Position",
    "Timeline",
    "Window",
    "decode_position",
    "encode_position",
    "timeline",
]

DEFAULT_FIRST = 20
MAX_FIRST = 100
# Merge order of sessions starting at the same instant; also the order of `SessionSource`.
SOURCES = ("openf1", "guidebook", "sqlrace")
# Guides whose dates miss the window by more than this are not read (see _may_overlap).
GUIDE_DATE_MARGIN = timedelta(days=1)
_CURSOR_TAG = "timeline"

SessionRecord = F1SessionRecord | GuidebookSessionRecord | SqlRaceSessionRecord


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def overlaps(self, starts_at: datetime, ends_at: datetime | None) -> bool:
        """[starts_at, ends_at) meets [start, end); a session without an end is an instant."""
        if starts_at >= self.end:
            return False
        return starts_at >= self.start or (ends_at is not None and ends_at > self.start)


@dataclass(frozen=True, order=True)
class Position:
    """Where an item sorts: start, then source, then the source's own key (a total order)."""

    starts_at: datetime
    source: int
    key: Any  # int for OpenF1 and Guidebook, "connection/key" for SQL Race


@dataclass(frozen=True)
class Item:
    position: Position
    record: SessionRecord


@dataclass(frozen=True)
class Timeline:
    items: list[Item]
    has_next_page: bool
    total: int | None  # None unless counted, or when a source failed


def encode_position(position: Position) -> str:
    payload = [_CURSOR_TAG, position.starts_at.isoformat(), SOURCES[position.source], position.key]
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode()


def decode_position(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4))
        tag, starts_at, source, key = orjson.loads(raw)
        moment = datetime.fromisoformat(starts_at)
        valid = moment.tzinfo is not None and in_utc_range(moment) is moment
        position = Position(moment, SOURCES.index(source), key)
        valid = valid and tag == _CURSOR_TAG
        valid = valid and isinstance(key, str if source == "sqlrace" else int)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        valid = False
    if not valid:
        raise BadUserInput(f"{cursor!r} is not a cursor of `sessions`", field="after")
    return position


def _select(items: Iterable[Item], after: Position | None, limit: int | None) -> list[Item]:
    """The first `limit` items after `after`, in timeline order."""
    ordered = sorted(
        (i for i in items if after is None or i.position > after), key=lambda i: i.position
    )
    return ordered if limit is None else ordered[:limit]


Fetch = Callable[[Info, Window, Position | None, int | None], Awaitable[list[Item]]]


async def _openf1(
    info: Info, window: Window, after: Position | None, limit: int | None
) -> list[Item]:
    # OpenF1 filters by date itself; a cursor also raises the lower bound of the start.
    starts = Condition(lt=window.end, gte=after.starts_at if after else None)
    spec = (("date_start", starts), ("date_end", Condition(gt=window.start)))
    records = await info.context.providers.openf1.sessions(spec)
    info.context.loaders.prime_f1_sessions(records)
    items = (
        Item(Position(r.date_start, 0, r.session_key), r)
        for r in records
        if r.date_start is not None and window.overlaps(r.date_start, r.date_end)
    )
    return _select(items, after, limit)


def _may_overlap(guide: GuideRecord, window: Window) -> bool:
    """Guidebook cannot filter sessions by time, so guides dated far from the window are
    skipped; ongoing guides (no dates) are always read."""
    if guide.start_date is None or guide.end_date is None:
        return True
    return (
        guide.start_date - GUIDE_DATE_MARGIN < window.end
        and guide.end_date + GUIDE_DATE_MARGIN > window.start
    )


async def _guidebook(
    info: Info, window: Window, after: Position | None, limit: int | None
) -> list[Item]:
    provider = info.context.providers.guidebook
    assert provider is not None  # sources() offers only configured sources
    guides = (await provider.guides()).records
    loaders = info.context.loaders.guidebook
    for guide in guides:
        loaders.guide.prime(guide.id, guide)

    async def of_guide(guide_id: int) -> list[Item]:
        """In start order, page by page, until the window or the page is full."""
        query = SessionQuery(guide_id, ordering=("start_time", "id"))
        found: list[Item] = []
        offset = 0
        while True:
            page = await provider.sessions(query, offset, provider.effective_page_size)
            loaders.prime_sessions(page.records)
            for record in page.records:
                if record.start_time is None:
                    continue
                if record.start_time >= window.end:
                    return found  # later sessions start later still
                position = Position(record.start_time, 1, record.id)
                fits = window.overlaps(record.start_time, record.end_time)
                if fits and (after is None or position > after):
                    found.append(Item(position, record))
            offset += len(page.records)
            full = limit is not None and len(found) >= limit
            if full or not page.records or offset >= page.total:
                return found

    lists = await asyncio.gather(*(of_guide(g.id) for g in guides if _may_overlap(g, window)))
    return _select(itertools.chain.from_iterable(lists), after, limit)


async def _sqlrace(
    info: Info, window: Window, after: Position | None, limit: int | None
) -> list[Item]:
    # The server filters nothing and promises no order: every page of every connection is
    # read (each once per request), then the instants computed here are compared.
    loaders = info.context.loaders.sqlrace

    async def of_connection(name: str) -> list[Item]:
        return [
            Item(Position(r.starts_at, 2, f"{name}/{r.key}"), r)
            async for _, r in loaders.sessions(name)
            if r.starts_at is not None and window.overlaps(r.starts_at, r.ends_at)
        ]

    connections = await loaders.connections()
    lists = await asyncio.gather(*(of_connection(c.name) for c in connections))
    return _select(itertools.chain.from_iterable(lists), after, limit)


_FETCHERS: dict[str, Fetch] = {"openf1": _openf1, "guidebook": _guidebook, "sqlrace": _sqlrace}


def _sources(info: Info, asked: Sequence[str] | None) -> list[str]:
    """The sources to read: every configured one, or those asked for, reporting each asked
    for but not configured."""
    providers = info.context.providers
    configured = {
        "openf1": True,
        "guidebook": providers.guidebook is not None,
        "sqlrace": providers.sqlrace is not None,
    }
    if asked is None:
        return [name for name in SOURCES if configured[name]]
    chosen = [name for name in SOURCES if name in asked]
    for name in chosen:
        if not configured[name]:
            report(info, providers.not_configured(name))
    return [name for name in chosen if configured[name]]


async def timeline(
    info: Info,
    window: Window,
    asked: Sequence[str] | None,
    after: Position | None,
    first: int,
    count: bool,
) -> Timeline:
    """One page; with `count`, every source reads the whole window to give the total too.

    A source that fails is reported (its error names it) and the others' items are kept.
    """
    names = _sources(info, asked)
    # first + 1 per source: enough to fill the page and tell whether another follows.
    limit = None if count else first + 1
    results = await asyncio.gather(
        *(_FETCHERS[name](info, window, None if count else after, limit) for name in names),
        return_exceptions=True,
    )
    items: list[Item] = []
    failed = False
    for result in results:
        if isinstance(result, SessionGraphError):
            report(info, result)
            failed = True
        elif isinstance(result, BaseException):
            raise result
        else:
            items.extend(result)
    total = len(items) if count and not failed else None
    page = _select(items, after, first + 1)
    return Timeline(page[:first], len(page) > first, total)
