"""OpenF1 resolvers: GraphQL arguments in, records from loaders and providers out."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

from ..errors import BadUserInput, NotFound
from ..filtering import Condition, FilterSpec
from ..providers.openf1 import F1SessionRecord, MeetingRecord
from ..schema.context import Info
from ..schema.filters import to_filter_spec

__all__ = [
    "f1_session",
    "f1_sessions",
    "meeting",
    "meeting_of_session",
    "meetings",
    "sessions_of_meeting",
]


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


def _key_or_latest(key: int | None, latest: bool | None, what: str) -> FilterSpec:
    if (key is None) == (not latest):
        raise BadUserInput(f"{what} takes exactly one of `key` or `latest: true`")
    condition = Condition(latest=True) if latest else Condition(eq=key)
    return ((f"{what}_key", condition),)


async def meeting(info: Info, key: int | None, latest: bool | None) -> MeetingRecord:
    loaders = info.context.loaders
    if key is not None and not latest:
        found = await loaders.meeting.load(key)
    else:
        spec = _key_or_latest(key, latest, "meeting")
        records = await info.context.providers.openf1.meetings(spec)
        loaders.prime_meetings(records)
        found = records[-1] if records else None
    if found is None:
        raise NotFound(f"no meeting with key {key}" if key is not None else "no latest meeting")
    return found


async def f1_session(info: Info, key: int | None, latest: bool | None) -> F1SessionRecord:
    loaders = info.context.loaders
    if key is not None and not latest:
        found = await loaders.f1_session.load(key)
    else:
        spec = _key_or_latest(key, latest, "session")
        records = await info.context.providers.openf1.sessions(spec)
        loaders.prime_f1_sessions(records)
        found = records[-1] if records else None
    if found is None:
        raise NotFound(f"no F1 session with key {key}" if key is not None else "no latest session")
    return found


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
