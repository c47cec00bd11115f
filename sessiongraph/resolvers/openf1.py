"""OpenF1 resolvers: GraphQL arguments in, records from loaders and providers out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TypeVar

from ..errors import BadUserInput, NotFound
from ..filtering import Condition, FilterSpec
from ..loaders import CachedLoader
from ..providers.openf1 import F1LapRecord, F1SessionRecord, GridPositionRecord, MeetingRecord
from ..providers.openf1_telemetry import TelemetryKind, TelemetrySeries, downsample
from ..schema.context import Info
from ..schema.filters import to_filter_spec

__all__ = [
    "QUALIFYING_OF",
    "driver_data",
    "f1_session",
    "f1_sessions",
    "grid_of_session",
    "laps",
    "meeting",
    "meeting_of_session",
    "meetings",
    "session_data",
    "session_of",
    "sessions_of_meeting",
    "telemetry",
]

# The sessions whose result sets a race's or sprint's grid, by session name across eras
# (2023 called sprint qualifying "Sprint Shootout"); OpenF1 keys the grid on them (§4).
QUALIFYING_OF = {"Race": ("Qualifying",), "Sprint": ("Sprint Qualifying", "Sprint Shootout")}


async def meetings(
    info: Info, filter_input: object | None, session_filters: Iterable[object | None] = ()
) -> list[MeetingRecord]:
    """`session_filters`: the `sessions(filter:)` arguments the query selects on each meeting."""
    return await info.context.loaders.meetings_with_sessions(
        to_filter_spec(filter_input), [to_filter_spec(f) for f in session_filters]
    )


async def f1_sessions(
    info: Info, filter_input: object | None, meeting_selected: bool = False
) -> list[F1SessionRecord]:
    return await info.context.loaders.sessions_with_meetings(
        to_filter_spec(filter_input), meeting_selected
    )


RecordT = TypeVar("RecordT", MeetingRecord, F1SessionRecord)


async def _one(
    key: int | None,
    latest: bool | None,
    what: str,
    by_key: CachedLoader[int, RecordT | None],
    lookup: Callable[[FilterSpec], Awaitable[list[RecordT]]],
    prime: Callable[[list[RecordT]], None],
) -> RecordT:
    """One record by key (batched through its loader) or OpenF1's `latest` one."""
    if (key is None) == (not latest):
        raise BadUserInput(f"{what} takes exactly one of `key` or `latest: true`")
    found: RecordT | None
    if key is not None:
        found = await by_key.load(key)
    else:
        records = await lookup(((f"{what}_key", Condition(latest=True)),))
        prime(records)
        found = records[-1] if records else None
    if found is None:
        raise NotFound(f"no {what} with key {key}" if key is not None else f"no latest {what}")
    return found


async def meeting(info: Info, key: int | None, latest: bool | None) -> MeetingRecord:
    loaders = info.context.loaders
    openf1 = info.context.providers.openf1
    return await _one(
        key, latest, "meeting", loaders.meeting, openf1.meetings, loaders.prime_meetings
    )


async def f1_session(info: Info, key: int | None, latest: bool | None) -> F1SessionRecord:
    loaders = info.context.loaders
    openf1 = info.context.providers.openf1
    return await _one(
        key, latest, "session", loaders.f1_session, openf1.sessions, loaders.prime_f1_sessions
    )


async def sessions_of_meeting(
    info: Info, meeting_key: int, filter_input: object | None
) -> list[F1SessionRecord]:
    spec = to_filter_spec(filter_input)
    return await info.context.loaders.f1_sessions_of_meeting.load((meeting_key, spec))


def meeting_of_session(info: Info, meeting_key: int) -> MeetingRecord | Awaitable[MeetingRecord]:
    """Synchronous when the meeting is already loaded, which it is after any meetings list."""
    found = info.context.loaders.meeting.get(meeting_key)
    if isinstance(found, MeetingRecord):
        return found
    if found is None:
        raise NotFound(f"meeting {meeting_key} of this session does not exist upstream")
    return _meeting_or_not_found(found, meeting_key)


async def _meeting_or_not_found(
    pending: Awaitable[MeetingRecord | None], meeting_key: int
) -> MeetingRecord:
    found = await pending
    if found is None:
        raise NotFound(f"meeting {meeting_key} of this session does not exist upstream")
    return found


SessionRowT = TypeVar("SessionRowT")


async def session_data(
    info: Info, cls: type[SessionRowT], session_key: int, spec: FilterSpec = ()
) -> list[SessionRowT]:
    """One session's rows of a per-session collection, batched with every other session's."""
    return await info.context.loaders.session_rows(cls).load((session_key, spec))


async def driver_data(
    info: Info, cls: type[SessionRowT], session_key: int, driver_number: int
) -> list[SessionRowT]:
    """One driver's rows: the session's whole collection (one request for all its drivers,
    and all sessions of the query), kept for that driver here."""
    rows = await session_data(info, cls, session_key)
    return [r for r in rows if getattr(r, "driver_number", None) == driver_number]


async def laps(info: Info, session_key: int, driver_number: int | None) -> list[F1LapRecord]:
    spec: FilterSpec = ()
    if driver_number is not None:
        spec = (("driver_number", Condition(eq=driver_number)),)
    return await session_data(info, F1LapRecord, session_key, spec)


# Beyond an hour between samples a series says nothing a lap list would not.
MAX_EVERY_SECONDS = 3600.0


async def telemetry(
    info: Info,
    kind: TelemetryKind,
    session_key: int,
    driver_number: int,
    start: datetime | None,
    end: datetime | None,
    every_seconds: float | None,
) -> TelemetrySeries:
    """One driver's car data or location in `[start, end)`, downsampled if asked."""
    if not 1 <= driver_number <= 99:
        raise BadUserInput("`driverNumber` is a car number, 1 to 99", field="driverNumber")
    if start is not None and end is not None and start >= end:
        raise BadUserInput("`to` must come after `from` (the window is [from, to))", field="to")
    if every_seconds is not None and not 0 < every_seconds <= MAX_EVERY_SECONDS:
        raise BadUserInput(
            f"`everySeconds` must be more than 0 and at most {MAX_EVERY_SECONDS:g}",
            field="everySeconds",
        )
    found = await info.context.loaders.telemetry().load(
        (kind, session_key, driver_number, start, end)
    )
    return downsample(found, every_seconds) if every_seconds else found


async def session_of(info: Info, session_key: int) -> F1SessionRecord:
    found = await info.context.loaders.f1_session.load(session_key)
    if found is None:
        raise NotFound(f"no session with key {session_key}")
    return found


async def grid_of_session(
    info: Info, meeting_key: int, session_name: str | None
) -> list[GridPositionRecord]:
    """The grid a race or sprint starts from, found under its meeting's qualifying session."""
    names = QUALIFYING_OF.get(session_name or "")
    if names is None:
        return []
    loaders = info.context.loaders
    sessions = await loaders.f1_sessions_of_meeting.load((meeting_key, ()))
    qualifying = next((s for s in sessions if s.session_name in names), None)
    if qualifying is None:
        return []
    return await session_data(info, GridPositionRecord, qualifying.session_key)
