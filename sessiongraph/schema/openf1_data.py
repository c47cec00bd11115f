"""OpenF1 per-session types (drivers, results, grid, stints, pits, race control, weather, laps).

Each is built from its provider record field by field, under the upstream's camelCased names.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self, TypeAlias

import strawberry

from ..providers.openf1 import (
    ChampionshipDriverRecord,
    ChampionshipTeamRecord,
    DriverRecord,
    F1LapRecord,
    GridPositionRecord,
    IntervalRecord,
    OvertakeRecord,
    PitStopRecord,
    PositionRecord,
    RaceControlRecord,
    SessionResultRecord,
    StintRecord,
    TeamRadioRecord,
    WeatherRecord,
)
from ..providers.openf1_telemetry import CAR_DATA, LOCATION, TelemetryKind
from ..resolvers import openf1 as resolve
from .context import Info
from .ordering import OrderKey, check_window, order_input, ordered_window
from .records import copy_record
from .series import CarDataSeries, CarLocationSeries

__all__ = [
    "CAR_DATA_DESCRIPTION",
    "CAR_LOCATION_DESCRIPTION",
    "ChampionshipDriver",
    "ChampionshipDriverOrder",
    "ChampionshipTeam",
    "ChampionshipTeamOrder",
    "Driver",
    "DriverOrder",
    "F1Lap",
    "F1LapOrder",
    "GridPosition",
    "GridPositionOrder",
    "Interval",
    "IntervalOrder",
    "Overtake",
    "OvertakeOrder",
    "PitStop",
    "PitStopOrder",
    "Position",
    "PositionOrder",
    "RaceControlMessage",
    "RaceControlMessageOrder",
    "SessionResult",
    "SessionResultOrder",
    "Stint",
    "StintOrder",
    "TeamRadio",
    "TeamRadioOrder",
    "TyreStint",
    "WeatherSample",
    "WeatherSampleOrder",
    "fastest",
    "session_list",
    "telemetry_field",
]

_PHASES = "Q1, Q2, Q3 in that order; an entry is null for a phase the driver did not run."
_WINDOW = (
    " The window is [from, to) (from inclusive, to exclusive), sent to OpenF1 as date filters; "
    "without it, the whole session (a race is about 20,000 samples per car). One upstream "
    "request per driver and window."
)
CAR_DATA_DESCRIPTION = "Telemetry (OpenF1 `/v1/car_data`) as columns." + _WINDOW
CAR_LOCATION_DESCRIPTION = "Position on track (OpenF1 `/v1/location`) as columns." + _WINDOW


class _FromRecord:
    """`from_record` for types whose fields all have their record's field names."""

    @classmethod
    def from_record(cls, record: Any) -> Self:
        return copy_record(cls, record)


@strawberry.type(
    description="A driver's classification in one session (OpenF1 `/v1/session_result`). "
    "OpenF1 sends `duration` and `gap_to_leader` as a number, as a Q1-Q3 array in qualifying, "
    'or (the gap) as text like "+1 LAP"; each shape has its own field here, the others null.'
)
class SessionResult(_FromRecord):
    session_key: int
    meeting_key: int
    driver_number: int
    position: int | None = strawberry.field(description="Null for an unclassified driver.")
    number_of_laps: int | None
    points: float | None = strawberry.field(description="Races and sprints only.")
    dnf: bool | None = strawberry.field(description="Did not finish.")
    dns: bool | None = strawberry.field(description="Did not start.")
    dsq: bool | None = strawberry.field(description="Disqualified.")
    duration: float | None = strawberry.field(
        description="Seconds: total race time, or best lap in practice; null in qualifying."
    )
    duration_by_phase: list[float | None] | None = strawberry.field(
        description=f"Qualifying only: best lap in seconds per phase, {_PHASES}"
    )
    gap_to_leader: float | None = strawberry.field(
        description="Seconds behind the winner (0 for the winner); null when laps behind "
        "(see lapsBehind) and in qualifying."
    )
    gap_to_leader_by_phase: list[float | None] | None = strawberry.field(
        description=f"Qualifying only: seconds behind the phase's fastest, {_PHASES}"
    )
    gap_to_leader_text: str | None = strawberry.field(
        description='The gap when OpenF1 sends it as text, verbatim, e.g. "+1 LAP".'
    )
    laps_behind: int | None = strawberry.field(
        description='N of a "+N LAP(S)" gapToLeaderText; null otherwise.'
    )


@strawberry.type(
    description="A starting-grid slot (OpenF1 `/v1/starting_grid`), set by a qualifying session."
)
class GridPosition(_FromRecord):
    session_key: int = strawberry.field(
        description="The qualifying (or sprint qualifying) session, not the race."
    )
    meeting_key: int
    driver_number: int
    position: int | None
    lap_duration: float | None = strawberry.field(description="Qualifying lap, in seconds.")


@strawberry.type(description="A stint on one set of tyres (OpenF1 `/v1/stints`).")
class Stint(_FromRecord):
    session_key: int
    meeting_key: int
    driver_number: int
    stint_number: int | None
    lap_start: int | None
    lap_end: int | None
    compound: str | None = strawberry.field(description="e.g. SOFT, MEDIUM, HARD, INTERMEDIATE.")
    tyre_age_at_start: int | None = strawberry.field(description="Laps already on the tyres.")


@strawberry.type(description="A pit-lane visit (OpenF1 `/v1/pit`).")
class PitStop(_FromRecord):
    session_key: int
    meeting_key: int
    driver_number: int
    lap_number: int | None
    date: datetime | None
    lane_duration: float | None = strawberry.field(
        description="Seconds from pit entry to exit (OpenF1's pit_duration in older data)."
    )
    stop_duration: float | None = strawberry.field(
        description="Seconds stationary; only from the 2024 US Grand Prix on."
    )
    pit_duration: float | None = strawberry.field(
        deprecation_reason="OpenF1 renamed it lane_duration; use laneDuration."
    )

    @classmethod
    def from_record(cls, record: PitStopRecord) -> Self:
        made = super().from_record(record)
        if made.lane_duration is None:
            made.lane_duration = record.pit_duration
        return made


@strawberry.type(description="A race-control message (OpenF1 `/v1/race_control`).")
class RaceControlMessage(_FromRecord):
    session_key: int
    meeting_key: int
    date: datetime | None
    driver_number: int | None = strawberry.field(description="Null unless about one driver.")
    lap_number: int | None
    category: str | None = strawberry.field(description="e.g. Flag, SafetyCar, Drs, Other.")
    flag: str | None
    scope: str | None = strawberry.field(description="Track, Sector or Driver.")
    sector: int | None
    message: str | None
    qualifying_phase: int | None = strawberry.field(description="Null in data before 2026.")


@strawberry.type(description="A weather sample, about one a minute (OpenF1 `/v1/weather`).")
class WeatherSample(_FromRecord):
    session_key: int
    meeting_key: int
    date: datetime | None
    air_temperature: float | None = strawberry.field(description="°C.")
    track_temperature: float | None = strawberry.field(description="°C.")
    humidity: float | None = strawberry.field(description="Percent.")
    pressure: float | None = strawberry.field(description="mbar.")
    rainfall: int | None = strawberry.field(description="1 while it rains, else 0.")
    wind_direction: int | None = strawberry.field(description="Degrees, 0-359.")
    wind_speed: float | None = strawberry.field(description="m/s.")


@strawberry.type(
    description="One lap of one driver (OpenF1 `/v1/laps`); SQL Race laps are `Lap`. "
    "Lap 1's timings are inferred upstream and often null."
)
class F1Lap(_FromRecord):
    session_key: int
    meeting_key: int
    driver_number: int
    lap_number: int
    date_start: datetime | None
    lap_duration: float | None = strawberry.field(description="Seconds.")
    duration_sector_1: float | None = strawberry.field(description="Seconds.")
    duration_sector_2: float | None = strawberry.field(description="Seconds.")
    duration_sector_3: float | None = strawberry.field(description="Seconds.")
    i1_speed: int | None = strawberry.field(description="km/h at intermediate 1.")
    i2_speed: int | None = strawberry.field(description="km/h at intermediate 2.")
    st_speed: int | None = strawberry.field(description="km/h at the speed trap.")
    is_pit_out_lap: bool | None
    segments_sector_1: list[int | None] | None = strawberry.field(
        description="Mini-sector status codes as F1 live timing sends them, e.g. 2049."
    )
    segments_sector_2: list[int | None] | None = strawberry.field(description="As sector 1.")
    segments_sector_3: list[int | None] | None = strawberry.field(description="As sector 1.")


@strawberry.type(
    description="A driver's position, emitted on every change (OpenF1 `/v1/position`)."
)
class Position(_FromRecord):
    session_key: int
    meeting_key: int
    driver_number: int
    date: datetime | None
    position: int | None


@strawberry.type(
    description="Gaps to the leader and to the car ahead, about every 4 s in races (OpenF1 "
    '`/v1/intervals`). OpenF1 sends each gap as seconds, as text like "+1 LAP", or null; each '
    "shape has its own field here."
)
class Interval(_FromRecord):
    session_key: int
    meeting_key: int
    driver_number: int
    date: datetime | None
    gap_to_leader: float | None = strawberry.field(description="Seconds; null when laps behind.")
    gap_to_leader_text: str | None = strawberry.field(description='Verbatim, e.g. "+1 LAP".')
    laps_behind: int | None = strawberry.field(description='N of a "+N LAP(S)" gap to the leader.')
    interval: float | None = strawberry.field(description="Seconds to the car ahead.")
    interval_text: str | None = strawberry.field(description='Verbatim, e.g. "+1 LAP".')
    interval_laps_behind: int | None = strawberry.field(description='N of a "+N LAP(S)" interval.')


@strawberry.type(description="A team radio clip (OpenF1 `/v1/team_radio`); sparse upstream.")
class TeamRadio(_FromRecord):
    session_key: int
    meeting_key: int
    driver_number: int
    date: datetime | None
    recording_url: str | None


@strawberry.type(
    description="One pass in a race (OpenF1 `/v1/overtakes`); OpenF1 says it may be incomplete."
)
class Overtake(_FromRecord):
    session_key: int
    meeting_key: int
    overtaking_driver_number: int
    overtaken_driver_number: int
    date: datetime | None
    position: int | None = strawberry.field(description="The position gained.")


_BETA = " OpenF1 marks this endpoint beta; values can be null early in a live session."


@strawberry.type(
    description="A driver's championship standing before and after a race session (OpenF1 "
    "`/v1/championship_drivers`)." + _BETA
)
class ChampionshipDriver(_FromRecord):
    session_key: int
    meeting_key: int
    driver_number: int
    position_start: int | None
    position_current: int | None
    points_start: float | None
    points_current: float | None


@strawberry.type(
    description="A team's championship standing before and after a race session (OpenF1 "
    "`/v1/championship_teams`)." + _BETA
)
class ChampionshipTeam(_FromRecord):
    session_key: int
    meeting_key: int
    team_name: str
    position_start: int | None
    position_current: int | None
    points_start: float | None
    points_current: float | None


# Ordering inputs, one per list, made from the record's own fields.
if TYPE_CHECKING:
    DriverOrder: TypeAlias = OrderKey
    SessionResultOrder: TypeAlias = OrderKey
    GridPositionOrder: TypeAlias = OrderKey
    StintOrder: TypeAlias = OrderKey
    PitStopOrder: TypeAlias = OrderKey
    RaceControlMessageOrder: TypeAlias = OrderKey
    WeatherSampleOrder: TypeAlias = OrderKey
    F1LapOrder: TypeAlias = OrderKey
    PositionOrder: TypeAlias = OrderKey
    IntervalOrder: TypeAlias = OrderKey
    TeamRadioOrder: TypeAlias = OrderKey
    OvertakeOrder: TypeAlias = OrderKey
    ChampionshipDriverOrder: TypeAlias = OrderKey
    ChampionshipTeamOrder: TypeAlias = OrderKey
else:
    DriverOrder = order_input("Driver", DriverRecord, "drivers")
    SessionResultOrder = order_input("SessionResult", SessionResultRecord, "results")
    GridPositionOrder = order_input("GridPosition", GridPositionRecord, "grid slots")
    StintOrder = order_input("Stint", StintRecord, "stints")
    PitStopOrder = order_input("PitStop", PitStopRecord, "pit stops")
    RaceControlMessageOrder = order_input(
        "RaceControlMessage", RaceControlRecord, "race-control messages"
    )
    WeatherSampleOrder = order_input("WeatherSample", WeatherRecord, "weather samples")
    F1LapOrder = order_input("F1Lap", F1LapRecord, "laps")
    PositionOrder = order_input("Position", PositionRecord, "positions")
    IntervalOrder = order_input("Interval", IntervalRecord, "intervals")
    TeamRadioOrder = order_input("TeamRadio", TeamRadioRecord, "team radio clips")
    OvertakeOrder = order_input("Overtake", OvertakeRecord, "overtakes")
    ChampionshipDriverOrder = order_input(
        "ChampionshipDriver", ChampionshipDriverRecord, "driver standings"
    )
    ChampionshipTeamOrder = order_input(
        "ChampionshipTeam", ChampionshipTeamRecord, "team standings"
    )


def session_list(
    kind: type[Any], record: type[Any], order: Any, description: str, *, per_driver: bool = False
) -> Any:
    """A list field of a per-session collection with `orderBy`, `limit` and `offset`: on an
    F1Session all its rows, on a Driver that driver's (one request per collection either way)."""

    async def rows(
        self: Any,
        info: Info,
        order_by: Any = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Any:
        check_window(limit, offset)
        if per_driver:
            found = await resolve.driver_data(info, record, self.session_key, self.driver_number)
        else:
            found = await resolve.session_data(info, record, self.session_key)
        return [kind.from_record(r) for r in ordered_window(found, order_by, limit, offset)]

    # Real types, not strings: strawberry reads these to build the field's arguments.
    rows.__annotations__ = {
        "info": Info,
        "order_by": list[order] | None,
        "limit": int | None,
        "offset": int | None,
        "return": list[kind] | None,  # type: ignore[valid-type]
    }
    return strawberry.field(resolver=rows, description=description)


def telemetry_field(
    kind: TelemetryKind, series: type[Any], description: str, *, per_driver: bool
) -> Any:
    """`carData`/`carLocation`: on a Driver its own samples, on an F1Session those of the
    `driverNumber` given (required there: a whole session of every car is never asked)."""

    async def samples(
        self: Any,
        info: Info,
        driver_number: int | None = None,
        from_: datetime | None = None,
        to: datetime | None = None,
        every_seconds: float | None = None,
    ) -> Any:
        number = self.driver_number if driver_number is None else driver_number
        found = await resolve.telemetry(
            info, kind, self.session_key, number, from_, to, every_seconds
        )
        return series.from_series(found)

    # Real types, not strings: strawberry reads these to build the field's arguments.
    samples.__annotations__ = {
        "info": Info,
        "driver_number": int,
        "from_": Annotated[datetime | None, strawberry.argument(name="from")],
        "to": datetime | None,
        "every_seconds": float | None,
        "return": series | None,
    }
    # What strawberry reads for the arguments: no `driverNumber` on a Driver (it is the
    # driver's own), a required one on a session.
    signature = inspect.signature(samples)
    parameters = []
    for parameter in signature.parameters.values():
        if parameter.name == "driver_number":
            if per_driver:
                continue
            parameter = parameter.replace(default=inspect.Parameter.empty)
        parameters.append(parameter)
    samples.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return strawberry.field(resolver=samples, description=description)


def fastest(laps: list[F1LapRecord]) -> F1LapRecord | None:
    """The lap with the least duration; on a tie the earlier one (lap number, then driver)."""
    timed = [lap for lap in laps if lap.lap_duration is not None]
    return min(
        timed, key=lambda lap: (lap.lap_duration, lap.lap_number, lap.driver_number), default=None
    )


@strawberry.type(description="One stint of a tyre strategy.")
class TyreStint:
    stint_number: int | None
    compound: str | None
    lap_start: int | None
    lap_end: int | None
    laps: int | None = strawberry.field(description="lapEnd - lapStart + 1.")
    tyre_age_at_start: int | None

    @classmethod
    def from_stint(cls, record: StintRecord) -> Self:
        laps = None
        if record.lap_start is not None and record.lap_end is not None:
            laps = record.lap_end - record.lap_start + 1
        return cls(
            stint_number=record.stint_number,
            compound=record.compound,
            lap_start=record.lap_start,
            lap_end=record.lap_end,
            laps=laps,
            tyre_age_at_start=record.tyre_age_at_start,
        )


@strawberry.type(description="A driver entered in one session (OpenF1 `/v1/drivers`).")
class Driver(_FromRecord):
    session_key: int
    meeting_key: int
    driver_number: int
    broadcast_name: str | None = strawberry.field(description="e.g. M VERSTAPPEN.")
    full_name: str | None
    name_acronym: str | None = strawberry.field(description="e.g. VER.")
    team_name: str | None
    team_colour: str | None = strawberry.field(description="Hex RRGGBB, without a leading #.")
    first_name: str | None
    last_name: str | None
    headshot_url: str | None
    country_code: str | None = strawberry.field(description="Null in data from 2025 on.")

    laps = session_list(
        F1Lap, F1LapRecord, F1LapOrder, "This driver's laps (OpenF1 `/v1/laps`).", per_driver=True
    )
    stints = session_list(
        Stint, StintRecord, StintOrder, "This driver's stints (`/v1/stints`).", per_driver=True
    )
    pits = session_list(
        PitStop,
        PitStopRecord,
        PitStopOrder,
        "This driver's pit visits (`/v1/pit`).",
        per_driver=True,
    )
    positions = session_list(
        Position,
        PositionRecord,
        PositionOrder,
        "This driver's position changes (`/v1/position`).",
        per_driver=True,
    )
    intervals = session_list(
        Interval,
        IntervalRecord,
        IntervalOrder,
        "This driver's gaps, races only (`/v1/intervals`).",
        per_driver=True,
    )
    team_radio = session_list(
        TeamRadio,
        TeamRadioRecord,
        TeamRadioOrder,
        "This driver's team radio clips (`/v1/team_radio`).",
        per_driver=True,
    )

    car_data = telemetry_field(CAR_DATA, CarDataSeries, CAR_DATA_DESCRIPTION, per_driver=True)
    car_location = telemetry_field(
        LOCATION, CarLocationSeries, CAR_LOCATION_DESCRIPTION, per_driver=True
    )

    @strawberry.field(description="This driver's classification (`/v1/session_result`).")
    async def result(self, info: Info) -> SessionResult | None:
        rows = await resolve.driver_data(
            info, SessionResultRecord, self.session_key, self.driver_number
        )
        return SessionResult.from_record(rows[0]) if rows else None

    @strawberry.field(
        description="The grid slot this driver starts this race or sprint from (the "
        "`startingGrid` of its qualifying session); null for other sessions."
    )
    async def grid_position(self, info: Info) -> GridPosition | None:
        session = await resolve.session_of(info, self.session_key)
        grid = await resolve.grid_of_session(info, session.meeting_key, session.session_name)
        slot = next((g for g in grid if g.driver_number == self.driver_number), None)
        return GridPosition.from_record(slot) if slot is not None else None

    @strawberry.field(
        description="This driver's fastest timed lap: the least `lapDuration` (laps without "
        "one do not count; on a tie, the earlier lap)."
    )
    async def fastest_lap(self, info: Info) -> F1Lap | None:
        rows = await resolve.driver_data(info, F1LapRecord, self.session_key, self.driver_number)
        found = fastest(rows)
        return F1Lap.from_record(found) if found is not None else None

    @strawberry.field(
        description="This driver's stints in order, each with its compound and the number of "
        "laps it lasted (lapEnd - lapStart + 1; null while a stint is open)."
    )
    async def tyre_strategy(self, info: Info) -> list[TyreStint] | None:
        rows = await resolve.driver_data(info, StintRecord, self.session_key, self.driver_number)
        ordered = sorted(rows, key=lambda r: (r.stint_number is None, r.stint_number or 0))
        return [TyreStint.from_stint(r) for r in ordered]
