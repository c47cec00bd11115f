"""Emulator of the McLaren SQL Race REST "Query API" (`shared/reference/sqlrace.md`): `POST /token`
and both documented dialects, `/api/...` (Oct 2018) and `/api/v1/...`.

Parameter samples (`.../parameters/{ids}/{frequencyHz}/data`, `/data/count`, `/data/timeRanges`)
are synthetic, made by `sqlrace_samples.py`; its docstring and `data/sqlrace/SOURCE.md` say how.

Live recordings (sandbox control, beside `_control.py`'s stats/reset/faults):

- `POST /__sandbox/sqlrace/record` with `{"connection": "Season2024", "speed": 60, "laps": 12,
  "lap_seconds": 90}` starts recording a new session in that connection now and answers 201 with
  the recording (below). Only `connection` is required. `speed` (default 1, up to 100000) is
  session seconds per real second; `laps` (default 10, 0-200) is the flying laps between the out
  lap and the in lap; `lap_seconds` (50-120, default the circuit's) is the flying-lap pace;
  optional `circuit` (default "Silverstone"; any circuit the stored sessions use), `driver`
  (default "KHA"), `car`, `name` (the "Session Name" detail) and `state` ("Live", the default,
  or "LiveNotInServer": the SessionState the session shows while it records). A bad body gets
  400 `{"error": "<what is wrong>"}`; more than 100 recordings since the last reset get 409.
- `GET /__sandbox/sqlrace/record` -> `{"recordings": [recording, ...]}` in the order started;
  `GET /__sandbox/sqlrace/record/{key}` -> one recording (404 `{"error"}` when unknown).
- `DELETE /__sandbox/sqlrace/record/{key}` stops that recording where its clock is (200 with the
  recording; stopping a finished one changes nothing); `DELETE /__sandbox/sqlrace/record` stops
  them all (200 `{"recordings": [...]}`).
- `POST /__sandbox/reset` discards every recording (their sessions disappear) and restarts the
  numbering, so the next recordings get the same keys again.

A recording is `{"connection", "key", "id", "identifier", "state", "recording", "stopped",
"speed", "laps", "lap_seconds", "circuit", "driver", "car", "name", "time_of_recording",
"start_time", "clock", "end_time", "planned_end_time", "laps_count", "planned_laps_count",
"real_seconds_left"}`: `state` is the SessionState name the session shows now, `recording` is
true while the clock runs, `stopped` is true when a DELETE ended it early, times are the
API's own formats (`TimeOfRecording`, `"HH:MM:SS.fffffff"` offsets since midnight).

The run is laid out whole when recording starts, from seeds of the connection, the recording's
number in it since reset and its body (not the speed), so after a reset the same body gives the
same key, Id, lap times and samples (relative to StartTime; the generator is the stored sessions',
its track fitted to `lap_seconds`). TimeOfRecording is the wall clock (UTC) at the POST, data
starts a few seconds later (StartTime), then an out lap, the flying laps, an in lap and a few
seconds in the garage. The
recording clock runs from TimeOfRecording at `speed` times real (monotonic) time and is read on
every request; nothing runs in the background. While it runs the session is listed by
`sessions` and `sessions/live` with `State` Live (or LiveNotInServer), `EndTime` the clock (never
before StartTime), `LapsCount` and `.../laps` only the laps the clock has completed, and the
data endpoints (`data`, `data/count`, `data/timeRanges`, also `lap=` of a completed lap) serve
only output samples whose whole interval lies before the clock, with the values they keep once
the run is complete. When the clock reaches the planned end the session turns Historical with
every lap; a stop turns it Historical at the clock, with the laps completed by then and samples
up to there. Either way it leaves `sessions/live` and stays in `sessions`.
"""

# Which documented shape each connection emits (the same under both dialects, so a gateway meets
# every shape whichever base path it is configured with; `create_app(key_shape=, state_shape=)`
# forces one shape everywhere):
#   Season2024          SQL Server  Key {"value": guid}  State int   TimeZone present (seed shape)
#   Simulator           SQL Server  Key "guid"           State name  no TimeZone (Metadata shape)
#   Live Session Cache  SQLite      Key "guid"           State int   TimeZone present
# The vendor never published the integer values of SessionState; the integers here are this
# emulator's own choice (the members in the reference's alphabetical order, see STATE_CODES), so
# a client must map them through configuration, never by hard-coding these.

from __future__ import annotations

import asyncio
import functools
import hmac
import math
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Any, Literal, TypeVar
from urllib.parse import unquote
from xml.sax.saxutils import escape

import orjson
from aiohttp import web

from . import sqlrace_live as live
from . import sqlrace_samples as samples
from ._control import CONTROL_PREFIX, SandboxControl
from ._spec import EmulatorSpec

__all__ = ["SPEC", "STATE_CODES", "create_app"]

KeyShape = Literal["object", "string"]
StateShape = Literal["int", "name"]
Dialect = Literal["api", "api/v1"]
T = TypeVar("T")

STATE_CODES: dict[str, int] = {
    name: code
    for code, name in enumerate(
        ("Created", "Exporting", "Historical", "Indexed", "Live", "LiveNotInServer")
    )
}
LIVE_STATES = frozenset({"Live", "LiveNotInServer"})

TICKS_PER_SECOND = 10_000_000  # .NET TimeSpan/DateTime ticks are 100 ns
TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
DENIED = "Authorization has been denied for this request."
DATA_PAGE_SIZE = 200  # the reference's default for data
DATA_MAX_PAGE_SIZE = 1_000_000
MAX_SAMPLES = 5_000_000  # a query whose unpaged, unfiltered answer is longer is refused
MAX_RECORDINGS = 100  # live recordings kept between resets
FILTER_OPS: dict[str, Callable[[float, float], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
XML_NAMESPACES = (
    'xmlns:i="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns="http://schemas.datacontract.org/2004/07/MAT.TAP.Query.Api.Models"'
)


# --- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lap:
    number: int
    name: str
    start: int  # ticks since midnight of the recording day
    end: int
    counts: bool


@dataclass(frozen=True)
class _Session:
    key: str
    identifier: str
    day: date
    recorded: int  # ticks since midnight; TimeOfRecording's time of day
    start: int
    end: int
    laps: tuple[_Lap, ...]
    id: int
    state: str
    details: tuple[tuple[str, str], ...]
    has_parameters: bool
    lap_seconds: float | None = None  # the pace its track is fitted to; None: the circuit's


@dataclass(frozen=True)
class _Parameter:
    identifier: str
    description: str
    units: str
    format: str
    minimum: float
    maximum: float
    group: str
    frequency: float


@dataclass
class _Connection:
    name: str
    server_name: str
    is_sqlite: bool
    database_name: str
    root_path: str | None
    key_shape: KeyShape
    state_shape: StateShape
    time_zone: str | None
    sessions: list[_Session] = field(default_factory=list)  # newest first, as the seed lists them
    by_key: dict[str, _Session] = field(default_factory=dict)

    def add(self, sessions: list[_Session]) -> None:
        self.sessions = sorted(sessions, key=lambda s: (s.day, s.recorded), reverse=True)
        self.by_key = {s.key: s for s in self.sessions}


# identifier | description | units | format | minimum | maximum | group | frequency (Hz)
_PARAMETER_TABLE = """
vCar:Chassis|Car speed|km/h|%5.1f|0.0|400.0|Chassis|200.0
nEngine:Chassis|Engine speed|rpm|%5.0f|0.0|15000.0|Powertrain|200.0
NGear:Chassis|Engaged gear||%1.0f|-1.0|8.0|Powertrain|50.0
rThrottle:Chassis|Throttle pedal position|%|%5.1f|0.0|100.0|Driver|200.0
pBrakeF:Chassis|Front brake line pressure|bar|%5.1f|0.0|180.0|Brakes|200.0
pBrakeR:Chassis|Rear brake line pressure|bar|%5.1f|0.0|140.0|Brakes|200.0
rBrakeBias:Chassis|Brake balance front|%|%4.1f|45.0|65.0|Brakes|10.0
aSteerWheel:Chassis|Steering wheel angle|deg|%5.1f|-360.0|360.0|Driver|200.0
gLat:Chassis|Lateral acceleration|g|%4.2f|-6.0|6.0|Chassis|500.0
gLong:Chassis|Longitudinal acceleration|g|%4.2f|-6.0|4.0|Chassis|500.0
sLap:Chassis|Lap distance|m|%6.1f|0.0|7100.0|Chassis|100.0
NDRS:Chassis|DRS state||%1.0f|0.0|2.0|Aero|10.0
hRideF:Chassis|Front ride height|mm|%4.1f|0.0|80.0|Suspension|500.0
hRideR:Chassis|Rear ride height|mm|%4.1f|0.0|120.0|Suspension|500.0
TOilEngine:Chassis|Engine oil temperature|degC|%5.1f|0.0|160.0|Powertrain|10.0
TWaterEngine:Chassis|Engine water temperature|degC|%5.1f|0.0|140.0|Powertrain|10.0
MFuel:Chassis|Fuel mass remaining|kg|%5.2f|0.0|110.0|Powertrain|1.0
pTyreFL:Chassis|Tyre pressure front left|bar|%4.2f|0.0|3.0|Tyres|10.0
pTyreFR:Chassis|Tyre pressure front right|bar|%4.2f|0.0|3.0|Tyres|10.0
pTyreRL:Chassis|Tyre pressure rear left|bar|%4.2f|0.0|3.0|Tyres|10.0
pTyreRR:Chassis|Tyre pressure rear right|bar|%4.2f|0.0|3.0|Tyres|10.0
TTyreSurfFL:Chassis|Tyre surface temperature FL|degC|%5.1f|0.0|200.0|Tyres|50.0
TTyreSurfRR:Chassis|Tyre surface temperature RR|degC|%5.1f|0.0|200.0|Tyres|50.0
TAirInlet:Chassis|Airbox inlet temperature|degC|%5.1f|-20.0|80.0|Aero|10.0
"""
_PARAMETERS = tuple(
    _Parameter(i, d, u, f, float(lo), float(hi), g, float(hz))
    for i, d, u, f, lo, hi, g, hz in (
        row.split("|") for row in _PARAMETER_TABLE.strip().splitlines()
    )
)
_PARAMETER_BY_ID = {p.identifier.lower(): p for p in _PARAMETERS}
# Every listed parameter has samples, at its listed Frequency as the native rate.
assert set(samples.CHANNELS) == {p.identifier for p in _PARAMETERS}
assert all(TICKS_PER_SECOND % p.frequency == 0 for p in _PARAMETERS)

# (circuit, code, first day, lap seconds, race laps)
_WEEKENDS = (
    ("Bahrain", "BAH", date(2024, 2, 29), 92.6, 57),
    ("Jeddah", "SAU", date(2024, 3, 7), 89.9, 50),
    ("Melbourne", "AUS", date(2024, 3, 22), 79.0, 58),
    ("Silverstone", "GBR", date(2024, 7, 5), 88.5, 52),
)
_LAP_SECONDS = {name: seconds for name, _, _, seconds, _ in _WEEKENDS} | {
    "Suzuka": 91.5,
    "Monaco": 73.2,
    "Spa-Francorchamps": 106.3,
    "Monza": 81.4,
    "Yas Marina": 85.6,
}
# (session, day of weekend, start hh:mm, runs per car, flying laps lo-hi, description)
_WEEKEND_PLAN = (
    ("FP1", 0, (11, 30), 3, (3, 8), "FP1 aero rake and baseline"),
    ("FP2", 0, (15, 0), 4, (4, 14), "FP2 high fuel long run"),
    ("FP3", 1, (11, 30), 3, (3, 7), "FP3 quali preparation"),
    ("Qualifying", 1, (15, 0), 3, (1, 2), "Qualifying"),
    ("Race", 2, (15, 0), 1, (0, 0), "Race"),
)
_SIM_PROGRAMMES = (
    "Baseline correlation",
    "Setup sweep - ride height",
    "Brake bias sweep",
    "Aero map correlation",
    "Race simulation",
    "Tyre degradation study",
    "Differential map sweep",
)


def _ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class _Builder:
    """Lays out deterministic runs for one connection; every number comes from its own seed."""

    def __init__(self, seed: str, first_id: int) -> None:
        self.rng = random.Random(seed)
        self.next_id = first_id
        self.sessions: list[_Session] = []

    def laps(self, start: int, lap_seconds: float, flying: int, race: bool) -> tuple[_Lap, ...]:
        rng, clock = self.rng, start
        laps: list[_Lap] = []
        names = ["Out Lap", *(f"Lap {n}" for n in range(1, flying + 1)), "In Lap"]
        for number, name in enumerate(names):
            edge = name in ("Out Lap", "In Lap")
            pace = rng.uniform(1.3, 1.5) if edge else rng.uniform(0.99, 1.03)
            if race and not edge:
                pace += 0.05 * (1 - number / flying)  # heavy fuel early in the race
            end = clock + _ticks(lap_seconds * pace) + rng.randrange(TICKS_PER_SECOND)
            laps.append(_Lap(number, name, clock, end, not edge))
            clock = end
        return tuple(laps)

    def run(
        self,
        day: date,
        recorded: int,
        lap_seconds: float,
        flying: int,
        state: str,
        details: tuple[tuple[str, str], ...],
        race: bool = False,
    ) -> int:
        """Adds one recorded run and returns the tick at which its recording ended."""
        rng = self.rng
        key = _guid(rng)
        recorded += rng.randrange(TICKS_PER_SECOND)  # seven fractional digits, as recorded
        start = recorded + _ticks(rng.uniform(5, 40))
        laps = self.laps(start, lap_seconds, flying, race)
        end = laps[-1].end + _ticks(rng.uniform(2, 12))
        stamp = datetime.combine(day, datetime.min.time()) + timedelta(
            seconds=recorded // TICKS_PER_SECOND
        )
        self.next_id += rng.randint(1, 6)
        self.sessions.append(
            _Session(
                key=key,
                identifier=stamp.strftime("%y%m%d%H%M%S"),
                day=day,
                recorded=recorded,
                start=start,
                end=end,
                laps=laps,
                id=self.next_id,
                state=state,
                details=details,
                has_parameters=True,
            )
        )
        return end

    def empty(self, day: date, recorded: int, state: str) -> None:
        """A session created but never filled, like the seed's all-zero examples."""
        self.next_id += 1
        stamp = datetime.combine(day, datetime.min.time()) + timedelta(
            seconds=recorded // TICKS_PER_SECOND
        )
        self.sessions.append(
            _Session(
                key=_guid(self.rng),
                identifier=stamp.strftime("%y%m%d%H%M%S"),
                day=day,
                recorded=recorded + self.rng.randrange(TICKS_PER_SECOND),
                start=0,
                end=0,
                laps=(),
                id=self.next_id,
                state=state,
                details=(),
                has_parameters=False,
            )
        )


@dataclass(frozen=True)
class _Crew:
    """Where and with whom runs were recorded: the constant part of their session details."""

    circuit: str
    driver: str
    car: str
    kind: str  # the "Race/Test" detail

    def details(
        self, day: date, number: int, name: str, description: str
    ) -> tuple[tuple[str, str], ...]:
        return (
            ("Session Description", description),
            ("Session Name", name),
            ("Session Number", str(number)),
            ("Driver", self.driver),
            ("Car", self.car),
            ("Circuit", self.circuit),
            ("Race/Test", self.kind),
            ("Date of recording", day.strftime("%d/%m/%Y")),
        )


def _season() -> list[_Session]:
    builder = _Builder("sqlrace/Season2024", 1180)
    rng = builder.rng
    for circuit, code, first_day, lap_seconds, race_laps in _WEEKENDS:
        for driver, car in (("KHA", "MCL24-01"), ("BRV", "MCL24-02")):
            crew = _Crew(circuit, driver, car, "Race")
            number = 0
            for session, offset, (hour, minute), runs, (lo, hi), description in _WEEKEND_PLAN:
                day = first_day + timedelta(days=offset)
                clock = _ticks(hour * 3600 + minute * 60 + rng.uniform(0, 240))
                for run in range(1, runs + 1):
                    number += 1
                    race = session == "Race"
                    flying = race_laps if race else rng.randint(lo, hi)
                    label = "Race" if race else f"{session} R{run}"
                    details = crew.details(day, number, f"{code} {label} {driver}", description)
                    end = builder.run(day, clock, lap_seconds, flying, "Historical", details, race)
                    clock = end + _ticks(rng.uniform(240, 720))
    # Aborted starts: created, never filled (LapsCount 0, StartTime "00:00:00").
    builder.empty(date(2024, 3, 23), _ticks(9 * 3600 + 12 * 60 + 3), "Created")
    builder.empty(date(2024, 7, 6), _ticks(10 * 3600 + 1 * 60 + 47), "Historical")
    return builder.sessions


def _simulator() -> list[_Session]:
    builder = _Builder("sqlrace/Simulator", 4410)
    rng = builder.rng
    circuits = sorted(_LAP_SECONDS)
    day = date(2024, 1, 8)
    number = 0
    while len(builder.sessions) < 74:
        circuit = rng.choice(circuits)
        programme = rng.choice(_SIM_PROGRAMMES)
        crew = _Crew(circuit, rng.choice(("KHA", "BRV", "DEV")), "SIM-24", "Test")
        clock = _ticks(rng.choice((9, 10, 14)) * 3600 + rng.uniform(0, 1800))
        for run in range(1, rng.randint(2, 4) + 1):
            number += 1
            details = crew.details(day, number, f"DIL {circuit} {programme} R{run}", programme)
            state = "Indexed" if number % 29 == 0 else "Historical"
            end = builder.run(day, clock, _LAP_SECONDS[circuit], rng.randint(4, 18), state, details)
            clock = end + _ticks(rng.uniform(300, 900))
        day += timedelta(days=rng.randint(1, 4))
    # A night shift that runs past midnight: its offsets pass 24 h ("1.00:..."), which the
    # reference's "Times" note expects but calls unverified.
    night = date(2024, 6, 20)
    programme = "Overnight race simulation"
    details = _Crew("Monza", "DEV", "SIM-24", "Test").details(
        night, number + 1, f"DIL Monza {programme} R1", programme
    )
    builder.run(night, _ticks(23 * 3600 + 1200), _LAP_SECONDS["Monza"], 53, "Historical", details)
    return builder.sessions


def _live_cache() -> list[_Session]:
    builder = _Builder("sqlrace/Live Session Cache", 9020)
    rng = builder.rng
    count = 24
    # The newest runs are still being recorded or exported, as in a live cache.
    states = {count - 1: "Live", count - 2: "LiveNotInServer", count - 5: "Exporting"}
    for index in range(count):
        day = date(2024, 12, 10) + timedelta(days=index // 12)
        driver, car = ("KHA", "MCL24-01") if index % 2 == 0 else ("BRV", "MCL24-02")
        crew = _Crew("Yas Marina", driver, car, "Test")
        clock = _ticks(9 * 3600 + (index % 12) * 40 * 60 + rng.uniform(0, 600))
        name = f"YMC Test R{index // 2 + 1} {driver}"
        details = crew.details(day, index + 1, name, "Post-season tyre test")
        state = states.get(index, "Historical")
        builder.run(day, clock, _LAP_SECONDS["Yas Marina"], rng.randint(3, 12), state, details)
    return builder.sessions


_CACHE_FILE = (
    "C:\\Users\\AdminRestApi\\AppData\\Local\\McLaren Applied Technologies"
    "\\ATLAS 10\\SQL Race\\LiveSessionCache.ssn2"
)
# name: (ServerName, IsSqlite, DatabaseName, RootPath, TimeZone, Key shape, State shape, sessions)
_ConnectionRow = tuple[
    str, bool, str, str | None, str | None, KeyShape, StateShape, Callable[[], list[_Session]]
]
_CONNECTIONS: dict[str, _ConnectionRow] = {
    "Season2024": (
        "SQLRACE-DB01\\SQLEXPRESS", False, "SQLRACE2024", "D:\\SQLRace_Filestream", "UTC",
        "object", "int", _season,
    ),
    "Simulator": (
        "SIM-SQL01\\SQLRACE", False, "SQLRACE_SIM", "E:\\SimFilestream", None,
        "string", "name", _simulator,
    ),
    "Live Session Cache": (
        f"DbEngine=SQLite;Data Source={_CACHE_FILE};PRAGMA journal_mode=WAL;", True, _CACHE_FILE,
        None, "UTC", "string", "int", _live_cache,
    ),
}  # fmt: skip


def _connections(key_shape: KeyShape | None, state_shape: StateShape | None) -> list[_Connection]:
    connections = []
    for name, (server, sqlite, database, root, zone, keys, states, make) in _CONNECTIONS.items():
        connection = _Connection(
            name, server, sqlite, database, root, key_shape or keys, state_shape or states, zone
        )
        connection.add(make())
        connections.append(connection)
    return connections


@dataclass
class _Recording:
    """A session recorded live: laid out whole when it starts, revealed as its clock passes."""

    connection: str
    request: live.RecordRequest
    full: _Session  # the run as it is once complete (in its live state)
    clock: live.Clock
    stopped_run: samples.Run | None = None

    def view(self, now: float) -> _Session:
        """The session as the server shows it at real time `now`."""
        edge = self.clock.at(now)
        if self.clock.running(now):
            state = self.full.state
        elif not self.clock.stopped:
            return replace(self.full, state="Historical")
        else:
            state = "Historical"
        laps = tuple(lap for lap in self.full.laps if lap.end <= edge)
        return replace(self.full, laps=laps, end=max(self.full.start, edge), state=state)

    def source(self, now: float) -> tuple[samples.Run, int | None]:
        """The run the samples come from, and while recording the clock they stop at.

        Samples always come from the whole planned run, so a value seen live is the value the
        finished session serves; a stopped run simply ends at the stop."""
        if self.clock.running(now):
            return _run(self.full), self.clock.at(now)
        if not self.clock.stopped:
            return _run(self.full), None
        if self.stopped_run is None:
            whole = _run(self.full)
            end = max(whole.start, self.clock.at(now))
            self.stopped_run = replace(whole, end=end)
        return self.stopped_run, None


def _record(
    connection: _Connection, wanted: live.RecordRequest, ordinal: int, recorded_at: datetime
) -> _Session:
    """Lays out the whole run of a new recording; all but its timing comes from seeds."""
    seed = (
        f"sqlrace/record/{connection.name}/{ordinal}/{wanted.circuit}/{wanted.laps}/"
        f"{wanted.lap_seconds}/{wanted.driver}/{wanted.car}/{wanted.name}/{wanted.state}"
    )
    builder = _Builder(seed, max((s.id for s in connection.sessions), default=0) + ordinal)
    rng = builder.rng
    key = _guid(rng)
    day = recorded_at.date()
    midnight = datetime.combine(day, datetime.min.time(), recorded_at.tzinfo)
    elapsed = recorded_at - midnight
    recorded = (elapsed.days * 86_400 + elapsed.seconds) * TICKS_PER_SECOND
    recorded += elapsed.microseconds * 10 + rng.randrange(10)  # seven digits, as recorded
    start = recorded + _ticks(rng.uniform(2, 8))
    laps = builder.laps(start, wanted.lap_seconds, wanted.laps, race=False)
    end = laps[-1].end + _ticks(rng.uniform(2, 12))
    driver, car = wanted.driver, wanted.car or "MCL24-01"
    name = wanted.name or f"LIVE {wanted.circuit} R{ordinal} {driver}"
    details = _Crew(wanted.circuit, driver, car, "Test").details(
        day, len(connection.sessions) + ordinal, name, "Live recording"
    )
    return _Session(
        key=key,
        identifier=recorded_at.strftime("%y%m%d%H%M%S"),
        day=day,
        recorded=recorded,
        start=start,
        end=end,
        laps=laps,
        id=builder.next_id,
        state=wanted.state,
        details=details,
        has_parameters=True,
        lap_seconds=wanted.lap_seconds,
    )


# --- wire formats -----------------------------------------------------------------------------


def _timespan(ticks: int) -> str:
    """.NET `TimeSpan.ToString()`: `[d.]hh:mm:ss[.fffffff]`, the fraction left out when zero."""
    days, rest = divmod(ticks, TICKS_PER_DAY)
    seconds, fraction = divmod(rest, TICKS_PER_SECOND)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if days:
        text = f"{days}.{text}"
    return f"{text}.{fraction:07d}" if fraction else text


def _timespans(ticks: list[int]) -> list[str]:
    """`_timespan` of many ascending times: each whole second is formatted once."""
    out: list[str] = []
    second, prefix = -1, ""
    for t in ticks:
        whole, fraction = divmod(t, TICKS_PER_SECOND)
        if whole != second:
            second, prefix = whole, _timespan(whole * TICKS_PER_SECOND)
        out.append(f"{prefix}.{fraction:07d}" if fraction else prefix)
    return out


def _local_datetime(day: date, ticks: int) -> str:
    """JSON.NET's default for an unspecified-kind DateTime: no offset, trailing zeros trimmed."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    stamp = datetime.combine(day, datetime.min.time()) + timedelta(seconds=seconds)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{fraction:07d}".rstrip("0") if fraction else text


def _xml_element(tag: str, value: Any, item_tag: str) -> str:
    if value is None:
        return f'<{tag} i:nil="true"/>'
    if isinstance(value, dict):
        inner = "".join(_xml_element(k, v, item_tag) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(_xml_element(item_tag, v, item_tag) for v in value)
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return f"<{tag}>{inner}</{tag}>"


def _samples_xml(payload: list[dict[str, Any]]) -> bytes:
    """Samples as DataContractSerializer writes them: `Values` is a `Dictionary<string, double>`."""
    parts = [f"<ArrayOfParameterValue {XML_NAMESPACES}>"]
    arrays = 'xmlns:a="http://schemas.microsoft.com/2003/10/Serialization/Arrays"'
    for sample in payload:
        values = "".join(
            f"<a:KeyValueOfstringdouble><a:Key>{escape(k)}</a:Key><a:Value>{v!r}</a:Value>"
            "</a:KeyValueOfstringdouble>"
            for k, v in sample["Values"].items()
        )
        parts.append(
            f"<ParameterValue><Time>{sample['Time']}</Time>"
            f"<Values {arrays}>{values}</Values></ParameterValue>"
        )
    parts.append("</ArrayOfParameterValue>")
    return "".join(parts).encode()


def _to_xml(payload: Any, type_name: str) -> bytes:
    """A small DataContractSerializer look-alike: `ArrayOfX` of `X` elements."""
    if type_name == "ParameterValue":
        return _samples_xml(payload)
    if type_name == "long":
        return f'<long xmlns="http://schemas.microsoft.com/2003/10/Serialization/">{payload}</long>'.encode()
    root = f"ArrayOf{type_name}" if isinstance(payload, list) else type_name
    body = _xml_element(root, payload, type_name)
    if type_name == "Error":  # Web API writes its HttpError without a data contract namespace
        return body.encode()
    return body.replace(f"<{root}>", f"<{root} {XML_NAMESPACES}>", 1).encode()


def _media_quality(accept: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        kind = {"application/json": "json", "text/json": "json"}.get(media.lower())
        kind = kind or {"application/xml": "xml", "text/xml": "xml"}.get(media.lower())
        if kind:
            found[kind] = max(found.get(kind, 0.0), quality)
    return found


# --- HTTP -------------------------------------------------------------------------------------


class _HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"Message": message, **extra}


@dataclass
class _Call:
    request: web.Request
    dialect: Dialect
    args: list[str]
    query: dict[str, str]  # Web API binds query parameters case-insensitively


Handler = Callable[["_Emulator", _Call], tuple[Any, str]]


@dataclass
class _Tokens:
    lifetime: float
    issued: int = 0
    expiry: dict[str, float] = field(default_factory=dict)

    def issue(self) -> str:
        token = secrets.token_urlsafe(96)  # opaque, long, like OWIN's protected tickets
        self.expiry[token] = time.monotonic() + self.lifetime
        self.issued += 1
        return token

    def valid(self, token: str) -> bool:
        expiry = self.expiry.get(token)
        if expiry is None:
            return False
        if expiry <= time.monotonic():
            del self.expiry[token]
            return False
        return True

    def clear(self) -> None:
        self.issued = 0
        self.expiry.clear()


@dataclass
class _Emulator:
    connections: dict[str, _Connection]
    tokens: _Tokens
    username: str
    password: str
    default_page_size: int
    default_format: Literal["xml", "json"]
    auth_failure_status: int
    single_session_route: bool
    live_page_size: int | None = None  # None: as each dialect's docs say (200 in 2018, 50 in 2019)
    now: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    recordings: dict[str, _Recording] = field(default_factory=dict)  # by key, in start order
    started: Counter[str] = field(default_factory=Counter)  # recordings per connection

    # --- plumbing ---

    def negotiate(
        self,
        request: web.Request,
        payload: Any,
        type_name: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        quality = _media_quality(request.headers.get("Accept", ""))
        wanted = max(quality, key=lambda k: (quality[k], k == "json")) if quality else None
        if wanted is None or quality[wanted] <= 0:
            wanted = self.default_format
        if wanted == "json":
            body, content_type = orjson.dumps(payload), "application/json"
        else:
            body, content_type = _to_xml(payload, type_name), "application/xml"
        return web.Response(
            body=body, status=status, content_type=content_type, charset="utf-8", headers=headers
        )

    def authorised(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and self.tokens.valid(token.strip())

    def page(self, call: _Call, items: Sequence[T], default: int | None = None) -> Sequence[T]:
        page = _int_query(call.query, "page", 0)
        size = _int_query(call.query, "pageSize", default or self.default_page_size, minimum=1)
        return items[page * size : (page + 1) * size]

    def connection(self, call: _Call) -> _Connection:
        found = self.connections.get(call.args[0])
        if found is None:
            raise _HttpError(404, f"Connection '{call.args[0]}' was not found.")
        return found

    def session(self, call: _Call) -> tuple[_Connection, _Session]:
        connection, found, _ = self.find(call, self.now())
        return connection, found

    def find(self, call: _Call, now: float) -> tuple[_Connection, _Session, _Recording | None]:
        """The session named by the call as it is at `now`, and its recording if it has one."""
        connection = self.connection(call)
        key = call.args[1].lower()
        found = connection.by_key.get(key)
        if found is not None:
            return connection, found, None
        recording = self.recordings.get(key)
        if recording is None or recording.connection != connection.name:
            raise _HttpError(
                404, f"Session '{call.args[1]}' was not found in connection '{connection.name}'."
            )
        return connection, recording.view(now), recording

    def all_sessions(self, connection: _Connection) -> list[_Session]:
        """The stored sessions and the recorded ones as they are now, newest first."""
        now = self.now()
        recorded = [
            r.view(now) for r in self.recordings.values() if r.connection == connection.name
        ]
        if not recorded:
            return connection.sessions
        return sorted(
            [*connection.sessions, *recorded], key=lambda s: (s.day, s.recorded), reverse=True
        )

    # --- API ---

    def connection_json(self, connection: _Connection, dialect: Dialect) -> dict[str, Any]:
        # The v1 examples leave FriendlyName out; it equals Identifier in every example.
        friendly = {"FriendlyName": connection.name} if dialect == "api" else {}
        return friendly | {
            "ServerName": connection.server_name,
            "IsSqlite": connection.is_sqlite,
            "DatabaseName": connection.database_name,
            "Identifier": connection.name,
            "RootPath": connection.root_path,
        }

    def session_json(self, connection: _Connection, session: _Session) -> dict[str, Any]:
        key = {"value": session.key} if connection.key_shape == "object" else session.key
        time_zone = {"TimeZone": connection.time_zone} if connection.time_zone else {}
        state = STATE_CODES[session.state] if connection.state_shape == "int" else session.state
        return (
            {
                "Key": key,
                "Identifier": session.identifier,
                "TimeOfRecording": _local_datetime(session.day, session.recorded),
            }
            | time_zone
            | {
                "SessionType": "Session",
                "StartTime": _timespan(session.start),
                "EndTime": _timespan(session.end),
                "LapsCount": len(session.laps),
                "Id": session.id,
                "State": state,
            }
        )

    def list_connections(self, call: _Call) -> tuple[Any, str]:
        return [self.connection_json(c, call.dialect) for c in self.connections.values()], (
            "Connection"
        )

    def get_connection(self, call: _Call) -> tuple[Any, str]:
        return self.connection_json(self.connection(call), call.dialect), "Connection"

    def list_sessions(self, call: _Call, live: bool = False) -> tuple[Any, str]:
        connection = self.connection(call)
        if "filter" in call.query:
            raise _HttpError(
                400,
                "The request is invalid.",
                MessageDetail="The sandbox does not evaluate filter.",
            )
        wanted = _detail_filter(call.query.get("details", call.query.get("items", "")))
        sessions = [
            s
            for s in self.all_sessions(connection)
            if (not live or s.state in LIVE_STATES) and wanted <= set(s.details)
        ]
        # sessions/live: "default 200 in 2018; 50 in 2019 docs", so per dialect unless configured.
        default = None
        if live:
            default = self.live_page_size or (200 if call.dialect == "api" else 50)
        page = self.page(call, sessions, default)
        return [self.session_json(connection, s) for s in page], "Session"

    def list_live_sessions(self, call: _Call) -> tuple[Any, str]:
        return self.list_sessions(call, live=True)

    def get_session(self, call: _Call) -> tuple[Any, str]:
        if not self.single_session_route:
            raise _no_resource(call.request)
        return self.session_json(*self.session(call)), "Session"

    def list_details(self, call: _Call) -> tuple[Any, str]:
        _, session = self.session(call)
        return [{"Name": n, "Value": v} for n, v in session.details], "SessionDetail"

    def get_detail(self, call: _Call) -> tuple[Any, str]:
        _, session = self.session(call)
        for name, value in session.details:
            if name == call.args[2]:
                return {"Name": name, "Value": value}, "SessionDetail"
        raise _HttpError(404, f"Detail '{call.args[2]}' was not found.")

    @staticmethod
    def lap_json(lap: _Lap) -> dict[str, Any]:
        return {
            "StartTime": _timespan(lap.start),
            "EndTime": _timespan(lap.end),
            "LapTime": _timespan(lap.end - lap.start),
            "CountForFastestLap": lap.counts,
            "Name": lap.name,
            "Number": lap.number,
        }

    def list_laps(self, call: _Call) -> tuple[Any, str]:
        _, session = self.session(call)
        return [self.lap_json(lap) for lap in session.laps], "Lap"

    def get_lap(self, call: _Call) -> tuple[Any, str]:
        _, session = self.session(call)
        for lap in session.laps:
            if str(lap.number) == call.args[2]:
                return self.lap_json(lap), "Lap"
        raise _HttpError(404, f"Lap '{call.args[2]}' was not found.")

    def list_parameters(self, call: _Call) -> tuple[Any, str]:
        _, session = self.session(call)
        contains = call.query.get("contains", "").lower()
        starts = call.query.get("startswith", "").lower()
        chosen = [
            p
            for p in (_PARAMETERS if session.has_parameters else ())
            if contains in p.identifier.lower() and p.identifier.lower().startswith(starts)
        ]
        # PascalCase throughout: the 2018 fields plus the 2019 additions, since "the v1 SQLRace
        # docs did not change field casing".
        return [
            {
                "Identifier": p.identifier,
                "Name": p.identifier.split(":", 1)[0],
                "Description": p.description,
                "Units": p.units,
                "Format": p.format,
                "MinimumValue": p.minimum,
                "MaximumValue": p.maximum,
                "ParentParameterGroup": p.group,
                "Frequency": p.frequency,
            }
            for p in self.page(call, chosen)
        ], "Parameter"

    def data_query(self, call: _Call) -> _DataQuery:
        """`.../parameters/{p1,p2,...}/{frequencyHz}/data[/count|/timeRanges]` and its query."""
        now = self.now()
        _, session, recording = self.find(call, now)
        columns: dict[str, _Series] = {}
        for token in call.args[2].split(","):
            columns.setdefault(token, _series(session, token))
        try:
            hz = samples.parse_frequency(call.args[3])
        except samples.SampleQueryError as error:
            raise _HttpError(
                error.status, error.message, MessageDetail=error.detail or ""
            ) from None
        # While recording, the whole planned run gives the values and the clock cuts them off.
        run, clock = recording.source(now) if recording else (_run(session), None)
        lo, hi = run.start, run.end if clock is None else clock
        raw_lap = call.query.get("lap")
        if raw_lap:
            number = _int_query(call.query, "lap", 0)
            lap = next((lap for lap in session.laps if lap.number == number), None)
            if lap is None:
                raise _HttpError(404, f"Lap '{raw_lap}' was not found.")
            lo, hi = max(lo, lap.start), min(hi, lap.end)
        since, until = _time_query(call.query, "from"), _time_query(call.query, "to")
        lo = lo if since is None else max(lo, since)
        hi = hi if until is None else min(hi, until)
        grid = samples.Grid(run.start, run.end, hz)
        first, last = grid.window(lo, hi)
        if clock is not None:
            # Only samples whose interval the clock has closed: a sample's value never changes
            # once served (sample j aggregates [t_j, t_j+1); index_at(clock + 1) counts t <= clock).
            last = max(first, min(last, grid.index_at(clock + 1) - 1))
        if last - first > MAX_SAMPLES:
            raise _invalid(
                f"The query asks for {last - first} samples; at most {MAX_SAMPLES} are served. "
                "Lower the frequency or narrow from/to."
            )
        # Paging is checked for every endpoint, though only /data pages.
        _int_query(call.query, "page", 0)
        size = _int_query(call.query, "pageSize", DATA_PAGE_SIZE, minimum=1)
        if size > DATA_MAX_PAGE_SIZE:
            raise _invalid(f"pageSize is at most {DATA_MAX_PAGE_SIZE}.")
        cols = tuple(columns.values())
        conditions = (
            _conditions(session, call.query["filter"], cols) if call.query.get("filter") else ()
        )
        return _DataQuery(run, cols, grid, first, last, min(hi, run.end), conditions)

    def parameter_data(self, call: _Call) -> tuple[Any, str]:
        query = self.data_query(call)
        chosen = self.page_of(call, query.selected())
        if not chosen:
            return [], "ParameterValue"
        j0, j1 = chosen[0], chosen[-1] + 1
        columns = [query.values(c, j0, j1) for c in query.columns]
        if len(chosen) != j1 - j0:  # filtered: keep the chosen samples only
            columns = [[values[j - j0] for j in chosen] for values in columns]
        keys = [c.key for c in query.columns]
        times = _timespans([query.time(j) for j in chosen])
        return [
            {"Time": time_, "Values": dict(zip(keys, row, strict=True))}
            for time_, row in zip(times, zip(*columns, strict=True), strict=True)
        ], "ParameterValue"

    def page_of(self, call: _Call, items: Sequence[int]) -> Sequence[int]:
        page = _int_query(call.query, "page", 0)
        size = _int_query(call.query, "pageSize", DATA_PAGE_SIZE, minimum=1)
        return items[page * size : (page + 1) * size]

    def parameter_data_count(self, call: _Call) -> tuple[Any, str]:
        return len(self.data_query(call).selected()), "long"

    def parameter_data_time_ranges(self, call: _Call) -> tuple[Any, str]:
        query = self.data_query(call)
        chosen = query.selected()
        ranges: list[dict[str, str]] = []
        begin = 0
        for i in range(1, len(chosen) + 1):
            if i == len(chosen) or chosen[i] != chosen[i - 1] + 1:
                start = query.time(chosen[begin])
                end = min(query.time(chosen[i - 1] + 1), query.hi)
                ranges.append(
                    {
                        "StartTime": _timespan(start),
                        "EndTime": _timespan(end),
                        "Span": _timespan(end - start),
                    }
                )
                begin = i
        return ranges, "TimeRange"

    # --- endpoints ---

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        headers = {"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "-1"}
        if form.get("grant_type") != "password":
            return web.json_response(
                {"error": "unsupported_grant_type"}, status=400, headers=headers
            )
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        if not (
            hmac.compare_digest(username.encode(), self.username.encode())
            & hmac.compare_digest(password.encode(), self.password.encode())
        ):
            return web.json_response(
                {
                    "error": "invalid_grant",
                    "error_description": "The user name or password is incorrect.",
                },
                status=self.auth_failure_status,
                headers=headers,
            )
        token = self.tokens.issue()
        # OWIN reports the whole seconds left when it answers: 86399 for a one-day ticket.
        expires_in = max(0, math.ceil(self.tokens.lifetime) - 1)
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": expires_in},
            headers=headers,
        )

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        # Each raw segment is decoded exactly once and never normalised, so `%2F`, `..` or `%2E%2E`
        # inside a name stay inside that name.
        segments = [unquote(s) for s in request.rel_url.raw_path.split("/")[1:]]
        if len(segments) > 1 and segments[-1] == "":
            segments.pop()
        try:
            dialect, handler, args = _route(segments)
            if handler is None:
                raise _no_resource(request)
            if request.method != "GET":
                raise _HttpError(
                    405, f"The requested resource does not support http method '{request.method}'."
                )
            if not self.authorised(request):
                return self.negotiate(
                    request, {"Message": DENIED}, "Error", 401, {"WWW-Authenticate": "Bearer"}
                )
            query = {k.lower(): v for k, v in request.query.items()}
            call = _Call(request, dialect, args, query)
            if handler in _THREADED:  # long answers: keep the event loop (other emulators) going
                return await asyncio.to_thread(self.answer, handler, call)
            return self.answer(handler, call)
        except _HttpError as error:
            headers = {"Allow": "GET"} if error.status == 405 else None
            return self.negotiate(request, error.body, "Error", error.status, headers)

    def answer(self, handler: Handler, call: _Call) -> web.Response:
        payload, type_name = handler(self, call)
        return self.negotiate(call.request, payload, type_name)

    async def token_count(self, _request: web.Request) -> web.Response:
        return web.json_response({"issued": self.tokens.issued})

    async def revoke_tokens(self, _request: web.Request) -> web.Response:
        revoked = len(self.tokens.expiry)
        self.tokens.expiry.clear()
        return web.json_response({"revoked": revoked})

    # --- live recordings (sandbox control) ---

    def recording_json(self, recording: _Recording, now: float) -> dict[str, Any]:
        full, view, clock = recording.full, recording.view(now), recording.clock
        wanted = recording.request
        details = dict(full.details)
        return {
            "connection": recording.connection,
            "key": full.key,
            "id": full.id,
            "identifier": full.identifier,
            "state": view.state,
            "recording": clock.running(now),
            "stopped": clock.stopped,
            "speed": wanted.speed,
            "laps": wanted.laps,
            "lap_seconds": wanted.lap_seconds,
            "circuit": wanted.circuit,
            "driver": details["Driver"],
            "car": details["Car"],
            "name": details["Session Name"],
            "time_of_recording": _local_datetime(full.day, full.recorded),
            "start_time": _timespan(full.start),
            "clock": _timespan(clock.at(now)),
            "end_time": _timespan(view.end),
            "planned_end_time": _timespan(full.end),
            "laps_count": len(view.laps),
            "planned_laps_count": len(full.laps),
            "real_seconds_left": round(clock.real_seconds_left(now), 3),
        }

    def clear_recordings(self) -> None:
        self.recordings.clear()
        self.started.clear()

    async def start_recording(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        try:
            wanted = live.RecordRequest.from_json(payload, list(self.connections), _LAP_SECONDS)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if len(self.recordings) >= MAX_RECORDINGS:
            return web.json_response(
                {"error": f"at most {MAX_RECORDINGS} recordings; POST /__sandbox/reset first"},
                status=409,
            )
        connection = self.connections[wanted.connection]
        self.started[connection.name] += 1
        now, recorded_at = self.now(), self.wall_clock()
        full = _record(connection, wanted, self.started[connection.name], recorded_at)
        if full.key in connection.by_key or full.key in self.recordings:
            self.started[connection.name] -= 1  # astronomically unlikely; keys stay unique
            return web.json_response({"error": "session key collision; try again"}, status=409)
        clock = live.Clock(wanted.speed, now, full.recorded, full.end)
        recording = _Recording(connection.name, wanted, full, clock)
        self.recordings[full.key] = recording
        return web.json_response(self.recording_json(recording, now), status=201)

    def recording_named(self, request: web.Request) -> _Recording:
        key = request.match_info["key"]
        found = self.recordings.get(key.lower())
        if found is None:
            raise web.HTTPNotFound(
                text=orjson.dumps({"error": f"no recording {key!r}"}).decode(),
                content_type="application/json",
            )
        return found

    async def list_recordings(self, _request: web.Request) -> web.Response:
        now = self.now()
        found = [self.recording_json(r, now) for r in self.recordings.values()]
        return web.json_response({"recordings": found})

    async def get_recording(self, request: web.Request) -> web.Response:
        return web.json_response(self.recording_json(self.recording_named(request), self.now()))

    async def stop_recording(self, request: web.Request) -> web.Response:
        recording, now = self.recording_named(request), self.now()
        recording.clock.stop(now)
        return web.json_response(self.recording_json(recording, now))

    async def stop_recordings(self, _request: web.Request) -> web.Response:
        now = self.now()
        for recording in self.recordings.values():
            recording.clock.stop(now)
        found = [self.recording_json(r, now) for r in self.recordings.values()]
        return web.json_response({"recordings": found})


def _no_resource(request: web.Request) -> _HttpError:
    return _HttpError(
        404, f"No HTTP resource was found that matches the request URI '{request.url}'."
    )


def _int_query(query: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = query.get(name.lower())
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise _HttpError(
            400,
            "The request is invalid.",
            MessageDetail=f"'{raw}' is not a valid value for {name}.",
        )
    return value


def _detail_filter(text: str) -> set[tuple[str, str]]:
    pairs = (item.partition(":") for item in text.split(",") if item.strip())
    return {(name.strip(), value.strip()) for name, _, value in pairs}


def _invalid(detail: str) -> _HttpError:
    return _HttpError(400, "The request is invalid.", MessageDetail=detail)


@functools.lru_cache(maxsize=512)
def _run(session: _Session) -> samples.Run:
    circuit = dict(session.details).get("Circuit", "Yas Marina")
    return samples.Run(
        key=session.key,
        circuit=circuit,
        lap_seconds=session.lap_seconds or _LAP_SECONDS[circuit],
        start=session.start,
        end=session.end,
        laps=tuple((lap.number, lap.name, lap.start, lap.end) for lap in session.laps),
    )


@dataclass(frozen=True)
class _Series:
    key: str  # the name in `Values`: the requested token as sent
    parameter: _Parameter
    aggregation: str


@dataclass(frozen=True)
class _Condition:
    series: _Series
    test: Callable[[float, float], bool]
    value: float


@dataclass(frozen=True)
class _DataQuery:
    run: samples.Run
    columns: tuple[_Series, ...]
    grid: samples.Grid
    first: int  # the window, as sample indices of the grid
    last: int
    hi: int  # where the window ends, ticks
    conditions: tuple[_Condition, ...]

    def values(self, series: _Series, j0: int, j1: int) -> list[float]:
        return samples.series(
            self.run,
            series.parameter.identifier,
            series.parameter.frequency,
            series.aggregation,
            self.grid,
            j0,
            j1,
        )

    def selected(self) -> Sequence[int]:
        """The grid indices the query answers, before paging."""
        if not self.conditions:
            return range(self.first, self.last)
        chosen: list[int] = []
        block = 100_000
        for j0 in range(self.first, self.last, block):
            j1 = min(self.last, j0 + block)
            keep = [True] * (j1 - j0)
            for condition in self.conditions:
                values = self.values(condition.series, j0, j1)
                test, bound = condition.test, condition.value
                keep = [k and test(v, bound) for k, v in zip(keep, values, strict=True)]
            chosen += [j for j, k in zip(range(j0, j1), keep, strict=True) if k]
        return chosen

    def time(self, j: int) -> int:
        return self.grid.start + self.grid.offset(j)


def _series(session: _Session, token: str) -> _Series:
    if not token.strip():
        raise _invalid("A parameter identifier is empty.")
    name, has_aggregation, aggregation = token.partition(";")
    if has_aggregation:
        matched = [a for a in samples.AGGREGATIONS if a.lower() == aggregation.lower()]
        if not matched:
            raise _invalid(
                f"'{aggregation}' is not an aggregation; use one of "
                f"{', '.join(samples.AGGREGATIONS)}."
            )
        aggregation = matched[0]
    else:
        aggregation = samples.DEFAULT_AGGREGATION
    parameter = _PARAMETER_BY_ID.get(name.lower()) if session.has_parameters else None
    if parameter is None:
        raise _HttpError(404, f"Parameter '{name}' was not found in session '{session.key}'.")
    return _Series(token, parameter, aggregation)


def _conditions(
    session: _Session, text: str, columns: tuple[_Series, ...]
) -> tuple[_Condition, ...]:
    found: list[_Condition] = []
    for clause in text.split(","):
        parts = clause.split(";")
        if len(parts) not in (3, 4):
            raise _invalid(f"'{clause}' is not a filter; write parameter;op;value.")
        *named, op, raw = parts
        token = ";".join(named)
        if op.lower() not in FILTER_OPS:
            raise _invalid(f"'{op}' is not a filter operator; use {', '.join(FILTER_OPS)}.")
        try:
            value = float(raw)
        except ValueError:
            raise _invalid(f"'{raw}' is not a number.") from None
        if not math.isfinite(value):
            raise _invalid(f"'{raw}' is not a finite number.")
        try:
            series = _series(session, token)
        except _HttpError as error:
            raise _invalid(f"The filter names an unknown parameter '{token}'.") from error
        if len(named) == 1:  # no aggregation named: as the same parameter is requested
            series = next((c for c in columns if c.parameter is series.parameter), series)
        found.append(_Condition(series, FILTER_OPS[op.lower()], value))
    return tuple(found)


def _time_query(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name.lower())
    nanos = query.get(name.lower() + "nanos")
    found: list[int] = []
    if raw:
        try:
            found.append(samples.parse_time_of_day(raw))
        except ValueError:
            raise _invalid(
                f"'{raw}' is not a valid value for {name}; write hh:mm[:ss[.f]]."
            ) from None
    if nanos:
        if not nanos.isdigit():
            raise _invalid(f"'{nanos}' is not a valid value for {name}Nanos.")
        found.append(-(-int(nanos) // 100))  # to ticks, rounding up: both bounds stay exact
    if not found:
        return None
    return max(found) if name == "from" else min(found)


_ARG = "{}"
_ROUTES: tuple[tuple[tuple[str, ...], Handler], ...] = (
    (("connections",), _Emulator.list_connections),
    (("connections", _ARG), _Emulator.get_connection),
    (("connections", _ARG, "sessions"), _Emulator.list_sessions),
    (("connections", _ARG, "sessions", "live"), _Emulator.list_live_sessions),
    # Not in the reference; served only with `create_app(single_session_route=True)`.
    (("connections", _ARG, "sessions", _ARG), _Emulator.get_session),
    (("connections", _ARG, "sessions", _ARG, "details"), _Emulator.list_details),
    (("connections", _ARG, "sessions", _ARG, "details", _ARG), _Emulator.get_detail),
    (("connections", _ARG, "sessions", _ARG, "laps"), _Emulator.list_laps),
    (("connections", _ARG, "sessions", _ARG, "laps", _ARG), _Emulator.get_lap),
    (("connections", _ARG, "sessions", _ARG, "parameters"), _Emulator.list_parameters),
    (
        ("connections", _ARG, "sessions", _ARG, "parameters", _ARG, _ARG, "data"),
        _Emulator.parameter_data,
    ),
    (
        ("connections", _ARG, "sessions", _ARG, "parameters", _ARG, _ARG, "data", "count"),
        _Emulator.parameter_data_count,
    ),
    # The 2018 table writes `timeRanges`, the Feb 2019 notes `/timeranges`; both are served.
    *(
        (
            ("connections", _ARG, "sessions", _ARG, "parameters", _ARG, _ARG, "data", name),
            _Emulator.parameter_data_time_ranges,
        )
        for name in ("timeRanges", "timeranges")
    ),
)
_THREADED: frozenset[Handler] = frozenset(
    {
        _Emulator.parameter_data,
        _Emulator.parameter_data_count,
        _Emulator.parameter_data_time_ranges,
    }
)


def _route(segments: list[str]) -> tuple[Dialect, Handler | None, list[str]]:
    if segments[:2] == ["api", "v1"]:
        dialect: Dialect = "api/v1"
        rest = segments[2:]
    elif segments[:1] == ["api"]:
        dialect, rest = "api", segments[1:]
    else:
        return "api", None, []
    for pattern, handler in _ROUTES:
        if len(pattern) == len(rest) and all(
            p in (_ARG, s) for p, s in zip(pattern, rest, strict=True)
        ):
            return dialect, handler, [s for p, s in zip(pattern, rest, strict=True) if p == _ARG]
    return dialect, None, []


def _fault(status: int, retry_after: float | None) -> web.StreamResponse:
    known = status in HTTPStatus._value2member_map_
    message = HTTPStatus(status).phrase if known and status != 500 else "An error has occurred."
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else None
    return web.json_response({"Message": message}, status=status, headers=headers)


def create_app(
    *,
    username: str = "admin",
    password: str = "admin",  # noqa: S107 - a fresh install's documented default
    token_lifetime: float = 86_400,
    default_page_size: int = 50,
    key_shape: KeyShape | None = None,
    state_shape: StateShape | None = None,
    default_format: Literal["xml", "json"] = "xml",
    auth_failure_status: int = 400,
    single_session_route: bool = False,
    live_page_size: int | None = None,
) -> web.Application:
    """Builds the emulator; every option has the default the sandbox runs with.

    `default_page_size` settles the documented 50-vs-200 conflict (50, as the seed says);
    `default_format` answers requests whose Accept names neither JSON nor XML (a real Web API 2
    server would likely pick JSON for `*/*`; XML makes a client that forgets the header notice);
    `auth_failure_status` is what bad credentials get from `/token` (undocumented; OWIN sends 400);
    `live_page_size` is the default page of `sessions/live` (None: 200 under `api`, as the 2018
    docs say, and 50 under `api/v1`, as the 2019 docs say).
    """
    emulator = _Emulator(
        connections={c.name: c for c in _connections(key_shape, state_shape)},
        tokens=_Tokens(token_lifetime),
        username=username,
        password=password,
        default_page_size=default_page_size,
        default_format=default_format,
        auth_failure_status=auth_failure_status,
        single_session_route=single_session_route,
        live_page_size=live_page_size,
    )
    app = web.Application()
    control = SandboxControl(fault_responder=_fault)
    control.reset_hooks.append(emulator.tokens.clear)
    control.reset_hooks.append(emulator.clear_recordings)
    control.install(app)
    app.router.add_get(CONTROL_PREFIX + "sqlrace/tokens", emulator.token_count)
    app.router.add_delete(CONTROL_PREFIX + "sqlrace/tokens", emulator.revoke_tokens)
    record = CONTROL_PREFIX + "sqlrace/record"
    app.router.add_post(record, emulator.start_recording)
    app.router.add_get(record, emulator.list_recordings)
    app.router.add_delete(record, emulator.stop_recordings)
    app.router.add_get(record + "/{key}", emulator.get_recording)
    app.router.add_delete(record + "/{key}", emulator.stop_recording)
    app.router.add_post("/token", emulator.token)
    app.router.add_route("*", "/{tail:.*}", emulator.dispatch)
    return app


SPEC = EmulatorSpec(
    name="sqlrace",
    create_app=create_app,
    base_path="",
    gateway_env=lambda root: {
        "SQLRACE_URL": root,
        "SQLRACE_API_PATH": "api",
        "SQLRACE_USERNAME": "admin",
        "SQLRACE_PASSWORD": "admin",
    },
)
