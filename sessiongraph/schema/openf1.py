"""OpenF1 types: `Meeting`, `F1Session` with its per-session data, and their filters."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Self, TypeAlias

import strawberry
from strawberry.types.arguments import convert_argument

from ..providers.openf1 import (
    ChampionshipDriverRecord,
    ChampionshipTeamRecord,
    DriverRecord,
    F1LapRecord,
    F1SessionRecord,
    GridPositionRecord,
    IntervalRecord,
    MeetingRecord,
    OvertakeRecord,
    PitStopRecord,
    PositionRecord,
    RaceControlRecord,
    SessionResultRecord,
    StintRecord,
    TeamRadioRecord,
    WeatherRecord,
)
from ..providers.openf1_telemetry import CAR_DATA, LOCATION
from ..resolvers import openf1 as resolve
from .context import Info, subselections
from .filters import BooleanFilter, DateTimeFilter, IntFilter, KeyFilter, StringFilter
from .ids import encode_id, int_key
from .nodes import Node, register_node
from .openf1_data import (
    CAR_DATA_DESCRIPTION,
    CAR_LOCATION_DESCRIPTION,
    ChampionshipDriver,
    ChampionshipDriverOrder,
    ChampionshipTeam,
    ChampionshipTeamOrder,
    Driver,
    DriverOrder,
    F1Lap,
    F1LapOrder,
    GridPosition,
    GridPositionOrder,
    Interval,
    IntervalOrder,
    Overtake,
    OvertakeOrder,
    PitStop,
    PitStopOrder,
    Position,
    PositionOrder,
    RaceControlMessage,
    RaceControlMessageOrder,
    SessionResult,
    SessionResultOrder,
    Stint,
    StintOrder,
    TeamRadio,
    TeamRadioOrder,
    WeatherSample,
    WeatherSampleOrder,
    fastest,
    session_list,
    telemetry_field,
)
from .ordering import OrderKey, check_window, order_input, ordered_window
from .records import copy_record, made_once
from .series import CarDataSeries, CarLocationSeries
from .session import Session, SessionSource

if TYPE_CHECKING:
    MeetingOrder: TypeAlias = OrderKey
    F1SessionOrder: TypeAlias = OrderKey
else:
    MeetingOrder = order_input("Meeting", MeetingRecord, "meetings")
    F1SessionOrder = order_input("F1Session", F1SessionRecord, "sessions")

__all__ = ["F1Session", "F1SessionFilter", "Meeting", "MeetingFilter", "OpenF1Query"]


@strawberry.input(description="Meeting conditions; all given fields must hold (AND).")
class MeetingFilter:
    meeting_key: KeyFilter | None = None
    meeting_name: StringFilter | None = None
    meeting_official_name: StringFilter | None = None
    location: StringFilter | None = None
    country_key: IntFilter | None = None
    country_code: StringFilter | None = None
    country_name: StringFilter | None = None
    country_flag: StringFilter | None = None
    circuit_key: IntFilter | None = None
    circuit_short_name: StringFilter | None = None
    circuit_type: StringFilter | None = None
    circuit_info_url: StringFilter | None = None
    circuit_image: StringFilter | None = None
    gmt_offset: StringFilter | None = None
    date_start: DateTimeFilter | None = None
    date_end: DateTimeFilter | None = None
    year: IntFilter | None = None
    is_cancelled: BooleanFilter | None = None


@strawberry.input(description="F1 session conditions; all given fields must hold (AND).")
class F1SessionFilter:
    session_key: KeyFilter | None = None
    meeting_key: KeyFilter | None = None
    session_type: StringFilter | None = None
    session_name: StringFilter | None = None
    date_start: DateTimeFilter | None = None
    date_end: DateTimeFilter | None = None
    circuit_key: IntFilter | None = None
    circuit_short_name: StringFilter | None = None
    country_key: IntFilter | None = None
    country_code: StringFilter | None = None
    country_name: StringFilter | None = None
    location: StringFilter | None = None
    gmt_offset: StringFilter | None = None
    year: IntFilter | None = None
    is_cancelled: BooleanFilter | None = None


@strawberry.federation.type(
    keys=["meetingKey", "id"],
    description="A Grand Prix or testing weekend (OpenF1 `/v1/meetings`).",
)
class Meeting(Node):
    meeting_key: int
    meeting_name: str | None
    meeting_official_name: str | None
    location: str | None
    country_key: int | None
    country_code: str | None = strawberry.field(description="F1's 3-letter code, e.g. MON.")
    country_name: str | None
    country_flag: str | None
    circuit_key: int | None
    circuit_short_name: str | None
    circuit_type: str | None
    circuit_info_url: str | None
    circuit_image: str | None
    gmt_offset: str | None = strawberry.field(
        description="Local offset from UTC as OpenF1 writes it, e.g. 08:00:00 or -04:00:00."
    )
    date_start: datetime | None
    date_end: datetime | None = strawberry.field(description="Null in data older than 2026.")
    year: int | None
    is_cancelled: bool | None
    meeting_code: str | None = strawberry.field(
        deprecation_reason="OpenF1 dropped meeting_code in 2026; use countryCode."
    )

    @classmethod
    def from_record(cls, record: MeetingRecord) -> Self:
        return copy_record(cls, record, id=encode_id("Meeting", record.meeting_key))

    @strawberry.field(
        description="The meeting's sessions in start order; null with an error if unavailable."
    )
    async def sessions(
        self,
        info: Info,
        filter: F1SessionFilter | None = None,
        order_by: list[F1SessionOrder] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[F1Session] | None:
        check_window(limit, offset)
        records = await resolve.sessions_of_meeting(info, self.meeting_key, filter)
        return [F1Session.from_record(r) for r in ordered_window(records, order_by, limit, offset)]


@strawberry.federation.type(
    keys=["sessionKey", "id"],
    description="A practice, qualifying, sprint or race session (OpenF1).",
)
class F1Session(Session):
    session_key: int
    meeting_key: int
    session_type: str | None = strawberry.field(description="Practice, Qualifying or Race.")
    session_name: str | None = strawberry.field(
        description="e.g. Practice 1, Day 1, Sprint Qualifying, Sprint, Race."
    )
    date_start: datetime | None
    date_end: datetime | None
    circuit_key: int | None
    circuit_short_name: str | None
    country_key: int | None
    country_code: str | None
    country_name: str | None
    location: str | None
    gmt_offset: str | None
    year: int | None
    is_cancelled: bool | None

    @classmethod
    def from_record(cls, record: F1SessionRecord) -> Self:
        return copy_record(
            cls,
            record,
            id=encode_id("F1Session", record.session_key),
            name=record.session_name,
            starts_at=record.date_start,
            ends_at=record.date_end,
            source=SessionSource.OPENF1,
        )

    @strawberry.field(description="The meeting this session belongs to.")
    def meeting(self, info: Info) -> Meeting | None:
        # Not async: an already-loaded meeting is returned without an event-loop round trip.
        found = resolve.meeting_of_session(info, self.meeting_key)
        if isinstance(found, MeetingRecord):
            return made_once(info.context.loaders.types, found, Meeting.from_record)
        return _meeting_later(info, found)  # type: ignore[return-value]

    # Per-session data: one upstream request per collection for all the sessions in a query.
    # Each list is null, with a coded error, when OpenF1 cannot answer; siblings still do.

    drivers = session_list(
        Driver, DriverRecord, DriverOrder, "The drivers entered (OpenF1 `/v1/drivers`)."
    )
    results = session_list(
        SessionResult,
        SessionResultRecord,
        SessionResultOrder,
        "The classification (OpenF1 `/v1/session_result`), in upstream order.",
    )
    starting_grid = session_list(
        GridPosition,
        GridPositionRecord,
        GridPositionOrder,
        "The starting grid this session sets (OpenF1 `/v1/starting_grid`). OpenF1 keys the grid "
        "on the QUALIFYING session (or sprint qualifying), so this is empty on a race; use "
        "`grid` there.",
    )
    stints = session_list(Stint, StintRecord, StintOrder, "Tyre stints (OpenF1 `/v1/stints`).")
    pits = session_list(PitStop, PitStopRecord, PitStopOrder, "Pit-lane visits (OpenF1 `/v1/pit`).")
    race_control = session_list(
        RaceControlMessage,
        RaceControlRecord,
        RaceControlMessageOrder,
        "Race-control messages (OpenF1 `/v1/race_control`).",
    )
    weather = session_list(
        WeatherSample,
        WeatherRecord,
        WeatherSampleOrder,
        "Weather samples, one a minute (OpenF1 `/v1/weather`).",
    )
    positions = session_list(
        Position,
        PositionRecord,
        PositionOrder,
        "Every driver's position changes (OpenF1 `/v1/position`).",
    )
    intervals = session_list(
        Interval,
        IntervalRecord,
        IntervalOrder,
        "Gaps to the leader and the car ahead, races only (OpenF1 `/v1/intervals`).",
    )
    team_radio = session_list(
        TeamRadio, TeamRadioRecord, TeamRadioOrder, "Team radio clips (OpenF1 `/v1/team_radio`)."
    )
    overtakes = session_list(
        Overtake,
        OvertakeRecord,
        OvertakeOrder,
        "Passes, races only (OpenF1 `/v1/overtakes`); OpenF1 says the list may be incomplete.",
    )
    championship_drivers = session_list(
        ChampionshipDriver,
        ChampionshipDriverRecord,
        ChampionshipDriverOrder,
        "Drivers' standings before and after this race session (OpenF1 "
        "`/v1/championship_drivers`, beta upstream).",
    )
    championship_teams = session_list(
        ChampionshipTeam,
        ChampionshipTeamRecord,
        ChampionshipTeamOrder,
        "Teams' standings before and after this race session (OpenF1 "
        "`/v1/championship_teams`, beta upstream).",
    )

    @strawberry.field(
        description="For a race or sprint, the grid it starts from: the `startingGrid` of its "
        "meeting's Qualifying (for a sprint: Sprint Qualifying / Sprint Shootout) session. "
        "Empty for other sessions."
    )
    async def grid(
        self,
        info: Info,
        order_by: list[GridPositionOrder] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[GridPosition] | None:
        check_window(limit, offset)
        rows = await resolve.grid_of_session(info, self.meeting_key, self.session_name)
        return [GridPosition.from_record(r) for r in ordered_window(rows, order_by, limit, offset)]

    @strawberry.field(
        description="Laps (OpenF1 `/v1/laps`), in start order; `driverNumber` narrows to one "
        "driver, upstream."
    )
    async def laps(
        self,
        info: Info,
        driver_number: int | None = None,
        order_by: list[F1LapOrder] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[F1Lap] | None:
        check_window(limit, offset)
        rows = await resolve.laps(info, self.session_key, driver_number)
        return [F1Lap.from_record(r) for r in ordered_window(rows, order_by, limit, offset)]

    car_data = telemetry_field(
        CAR_DATA,
        CarDataSeries,
        CAR_DATA_DESCRIPTION + " `driverNumber` is required.",
        per_driver=False,
    )
    car_location = telemetry_field(
        LOCATION,
        CarLocationSeries,
        CAR_LOCATION_DESCRIPTION + " `driverNumber` is required.",
        per_driver=False,
    )

    @strawberry.field(
        description="The session's fastest timed lap over all drivers: the least `lapDuration` "
        "(on a tie, the earlier lap, then the lower car number)."
    )
    async def fastest_lap(self, info: Info) -> F1Lap | None:
        found = fastest(await resolve.session_data(info, F1LapRecord, self.session_key))
        return F1Lap.from_record(found) if found is not None else None


def _selected_session_filters(info: Info) -> list[F1SessionFilter | None]:
    """The `sessions(filter:)` inputs a meetings query will ask for, to fetch them early."""
    converter = info.schema.schema_converter
    filters: list[F1SessionFilter | None] = []
    for field in subselections(info, "sessions"):
        raw = field.arguments.get("filter")
        converted = convert_argument(
            raw, F1SessionFilter, converter.scalar_registry, info.schema.config
        )
        filters.append(converted if isinstance(converted, F1SessionFilter) else None)
    return filters


async def _meeting_later(info: Info, pending: Awaitable[MeetingRecord]) -> Meeting:
    return made_once(info.context.loaders.types, await pending, Meeting.from_record)


@strawberry.type
class OpenF1Query:
    """Root fields over OpenF1."""

    @strawberry.field(
        description="F1 meetings (Grand Prix and testing weekends), in start order. "
        "Null, with a coded error, when OpenF1 cannot answer; other root fields still do."
    )
    async def meetings(
        self,
        info: Info,
        filter: MeetingFilter | None = None,
        order_by: list[MeetingOrder] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[Meeting] | None:
        check_window(limit, offset)
        records = await resolve.meetings(info, filter, _selected_session_filters(info))
        return [Meeting.from_record(r) for r in ordered_window(records, order_by, limit, offset)]

    @strawberry.field(description="One meeting, by `key` or the `latest` one.")
    async def meeting(
        self, info: Info, key: int | None = None, latest: bool | None = False
    ) -> Meeting | None:
        return Meeting.from_record(await resolve.meeting(info, key, latest))

    @strawberry.field(
        description="F1 sessions, in start order. "
        "Null, with a coded error, when OpenF1 cannot answer; other root fields still do."
    )
    async def f1_sessions(
        self,
        info: Info,
        filter: F1SessionFilter | None = None,
        order_by: list[F1SessionOrder] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[F1Session] | None:
        check_window(limit, offset)
        records = await resolve.f1_sessions(info, filter, bool(subselections(info, "meeting")))
        return [F1Session.from_record(r) for r in ordered_window(records, order_by, limit, offset)]

    @strawberry.field(description="One F1 session, by `key` or the `latest` one.")
    async def f1_session(
        self, info: Info, key: int | None = None, latest: bool | None = False
    ) -> F1Session | None:
        return F1Session.from_record(await resolve.f1_session(info, key, latest))


async def _meeting_node(info: Info, key: str) -> Meeting:
    return Meeting.from_record(await resolve.meeting(info, int_key(key, "Meeting"), None))


async def _f1_session_node(info: Info, key: str) -> F1Session:
    return F1Session.from_record(await resolve.f1_session(info, int_key(key, "F1Session"), None))


register_node("Meeting", ["meetingKey"], _meeting_node)
register_node("F1Session", ["sessionKey"], _f1_session_node)
