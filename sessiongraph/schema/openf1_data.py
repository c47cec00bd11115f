"""OpenF1 per-session types (drivers, results, grid, stints, pits, race control, weather, laps).

Each is built from its provider record field by field, under the upstream's camelCased names.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Self, TypeAlias

import strawberry

from ..providers.openf1 import (
    DriverRecord,
    F1LapRecord,
    GridPositionRecord,
    PitStopRecord,
    RaceControlRecord,
    SessionResultRecord,
    StintRecord,
    WeatherRecord,
)
from .ordering import OrderKey, order_input
from .records import copy_record

__all__ = [
    "Driver",
    "DriverOrder",
    "F1Lap",
    "F1LapOrder",
    "GridPosition",
    "GridPositionOrder",
    "PitStop",
    "PitStopOrder",
    "RaceControlMessage",
    "RaceControlMessageOrder",
    "SessionResult",
    "SessionResultOrder",
    "Stint",
    "StintOrder",
    "WeatherSample",
    "WeatherSampleOrder",
]

_PHASES = "Q1, Q2, Q3 in that order; an entry is null for a phase the driver did not run."


class _FromRecord:
    """`from_record` for types whose fields all have their record's field names."""

    @classmethod
    def from_record(cls, record: Any) -> Self:
        return copy_record(cls, record)


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
