"""Guidebook read resolvers: GraphQL arguments in, records from loaders and the provider out."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import NotFound
from ..filtering import Condition, FilterSpec
from ..loaders import GuidebookLoaders
from ..providers.guidebook import (
    GuidebookInvalid,
    GuidebookProvider,
    GuidebookSessionRecord,
    GuideRecord,
    LocationRecord,
    Page,
    ScheduleTrackRecord,
    SessionQuery,
)
from ..schema.context import Info

__all__ = [
    "DEFAULT_FIRST",
    "MAX_FIRST",
    "guide",
    "guides",
    "loaders",
    "locations_of_guide",
    "pick",
    "provider",
    "schedule_tracks",
    "session",
    "sessions",
    "sessions_of_track",
]

DEFAULT_FIRST = 100
MAX_FIRST = 500
# Filters the upstream applies itself, when asked for one exact value.
PUSHED_DOWN = {"id": "id", "import_id": "import_id", "schedule_tracks": "schedule_track"}


def provider(info: Info) -> GuidebookProvider:
    found = info.context.providers.guidebook
    if found is None:
        raise info.context.providers.not_configured("guidebook")
    return found


def loaders(info: Info) -> GuidebookLoaders:
    provider(info)
    return info.context.loaders.guidebook


async def guides(info: Info, offset: int, limit: int) -> Page[GuideRecord]:
    page = await provider(info).guides(offset, limit)
    for record in page.records:
        loaders(info).guide.prime(record.id, record)
    return page


async def guide(info: Info, guide_id: int) -> GuideRecord:
    found = await loaders(info).guide.load(guide_id)
    if found is None:
        raise NotFound(f"no Guidebook guide {guide_id}")
    return found


async def schedule_tracks(info: Info, guide_id: int) -> list[ScheduleTrackRecord]:
    with _unknown_guide(guide_id):
        return await loaders(info).tracks_of_guide.load(guide_id)


async def locations_of_guide(info: Info, guide_id: int) -> list[LocationRecord]:
    with _unknown_guide(guide_id):
        return await loaders(info).locations_of_guide.load(guide_id)


async def session(info: Info, session_id: int) -> GuidebookSessionRecord:
    found = await loaders(info).session.load(session_id)
    if found is None:
        raise NotFound(f"no Guidebook session {session_id}")
    return found


async def sessions_of_track(
    info: Info, guide_id: int, track_id: int
) -> list[GuidebookSessionRecord]:
    return await loaders(info).sessions_of_track.load((guide_id, track_id))


async def sessions(
    info: Info, guide_id: int, spec: FilterSpec, ordering: Sequence[str], offset: int, limit: int
) -> Page[GuidebookSessionRecord]:
    """One page of a guide's sessions. Conditions the upstream cannot apply are applied here,
    over every page of what it can narrow (positions and totals then count matches only)."""
    pushed: dict[str, Any] = {}
    local: list[tuple[str, Condition]] = []
    for field, condition in spec:
        candidates = condition.candidates()
        exact = condition.lower() is None and condition.upper() is None
        if field in PUSHED_DOWN and exact and candidates is not None and len(candidates) == 1:
            pushed[PUSHED_DOWN[field]] = candidates[0]
        else:
            local.append((field, condition))
    if any(condition.unsatisfiable() for _, condition in spec):
        return Page([], 0, offset)
    query = SessionQuery(guide_id, ordering=_stable(ordering), **pushed)
    with _unknown_guide(guide_id):
        if not local:
            page = await provider(info).sessions(query, offset, limit)
        else:
            everything = await provider(info).sessions(query)
            matching = [r for r in everything.records if _matches(r, tuple(local))]
            page = Page(matching[offset : offset + limit], len(matching), offset)
    loaders(info).prime_sessions(page.records)
    return page


def pick(records: Sequence[Any], ids: Sequence[int]) -> list[Any]:
    """The records with these ids, in the order of `ids` (a session's own track order)."""
    by_id = {record.id: record for record in records}
    return [by_id[key] for key in ids if key in by_id]


def _stable(ordering: Sequence[str]) -> tuple[str, ...]:
    # Page numbers only mean something over a total order: `id` breaks every tie.
    keys = tuple(ordering) or ("start_time",)
    return keys if {"id", "-id"} & set(keys) else (*keys, "id")


def _matches(record: GuidebookSessionRecord, spec: FilterSpec) -> bool:
    for field, condition in spec:
        value = getattr(record, field)
        if field == "schedule_tracks":
            if not any(condition.matches(track) for track in value):
                return False
        elif not condition.matches(value):
            return False
    return True


@contextlib.contextmanager
def _unknown_guide(guide_id: int) -> Iterator[None]:
    """A guide-scoped list of a guide that does not exist: DRF says 400 on `guide`."""
    try:
        yield
    except GuidebookInvalid as exc:
        if any(error.field == "guide" for error in exc.errors):
            raise NotFound(f"no Guidebook guide {guide_id}") from exc
        raise
