"""The OpenF1 emulator's live replay: one recorded session played back as if it were running now.

A replay has a clock: `session start + from_seconds + speed * (real seconds since it started)`.
Every row of the replayed session gets one or more *versions*, each with the instant on that
clock when it appears. REST serves, for each row, its newest version the clock has passed (rows
with none are not there yet), and the scheduler publishes each version on MQTT topic
`v1/<endpoint>` as the clock passes it, with `_id` (rising) and `_key` (the row's identity).

When a row appears (its versions):

- `laps`: two versions.
  - At the lap's start, `date_start`: only `meeting_key, session_key, driver_number,
    lap_number, date_start, is_pit_out_lap` set, every other field null. A null `date_start`
    (every lap 1 of 9839) is estimated as the next lap's start minus this lap's duration (or
    the driver's median lap), the rule the synthetic telemetry uses; the field stays null.
  - At its completion, `date_start + lap_duration` (with either null: the next lap's start,
    or the estimated end of a last lap): the stored row.
  A lap whose completion is not after its start has the stored row only.
- `stints`: one version per lap the stint covers, at the start of lap n (as for laps) with
  `lap_end = n`; the last is the stored row. A driver without laps: the stored row at the
  session's start.
- `session_result`, `starting_grid`, `championship_drivers`, `championship_teams`: the
  session's `date_end`. Results come after the session; the grid is keyed on the qualifying
  session, so it appears when that session ends.
- Every other endpoint with dates (`race_control`, `pit`, `weather`, `position`, `intervals`,
  `team_radio`, `overtakes`): the row's `date`.
- `car_data`, `location` (synthetic): the sample's `date`, on REST only. They are not
  published (about 150 messages a second per race at speed 1).
- `drivers`, `sessions`, `meetings` and undated rows: visible from the start, never published.

Rows the clock has passed when a replay starts are visible at once and are not published (an
MQTT subscriber joining a live session does not get the past either). REST filters run over
every version the clock has passed and then keep the newest version per row, as OpenF1's server
does, so a filter on a value that changed can return an older version.

`_key` is the row's identity fields joined by `_` (a second stored row with the same fields
gets `_1`, the next `_2`):
- `laps`, `pit`: session_key, driver_number, lap_number;
- `stints`: session_key, driver_number, stint_number;
- `race_control`, `weather`: session_key, date;
- `position`, `intervals`, `team_radio`: session_key, date, driver_number;
- `overtakes`: session_key, date, overtaking_driver_number, overtaken_driver_number;
- `session_result`, `starting_grid`, `championship_drivers`: session_key, driver_number;
- `championship_teams`: session_key, team_name.
Dates are written as stored. `_id` comes from one counter per emulator that never goes back,
also across replays. A version the clock passes while the broker is down still takes its
`_id`, so a subscriber sees the gap.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import orjson

from . import openf1_telemetry as telemetry

__all__ = [
    "LIVE_WINDOW",
    "MAX_SPEED",
    "NEVER",
    "Replay",
    "ReplayRequest",
    "Timeline",
    "Version",
    "build_timeline",
]

MAX_SPEED: Final = 10_000.0
# How far before the session's start and after its end a replay may begin.
EARLIEST_SECONDS: Final = -3600.0
LATEST_AFTER_END_SECONDS: Final = 3600.0
# OpenF1's live window: from 30 minutes before a session starts until 30 minutes after it ends.
LIVE_WINDOW: Final = timedelta(minutes=30)
RESULT_COLLECTIONS: Final = frozenset(
    {"session_result", "starting_grid", "championship_drivers", "championship_teams"}
)
# Never clock-filtered: the schedule is known ahead of the sessions.
SCHEDULE_COLLECTIONS: Final = frozenset({"meetings", "sessions"})
KEY_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "laps": ("session_key", "driver_number", "lap_number"),
    "pit": ("session_key", "driver_number", "lap_number"),
    "stints": ("session_key", "driver_number", "stint_number"),
    "race_control": ("session_key", "date"),
    "weather": ("session_key", "date"),
    "position": ("session_key", "date", "driver_number"),
    "intervals": ("session_key", "date", "driver_number"),
    "team_radio": ("session_key", "date", "driver_number"),
    "car_data": ("session_key", "date", "driver_number"),
    "location": ("session_key", "date", "driver_number"),
    "overtakes": (
        "session_key",
        "date",
        "overtaking_driver_number",
        "overtaken_driver_number",
    ),
    "session_result": ("session_key", "driver_number"),
    "starting_grid": ("session_key", "driver_number"),
    "championship_drivers": ("session_key", "driver_number"),
    "championship_teams": ("session_key", "team_name"),
}
LAP_START_FIELDS: Final = frozenset(
    {"meeting_key", "session_key", "driver_number", "lap_number", "date_start", "is_pit_out_lap"}
)
# Published back to back before the scheduler lets the loop run other tasks.
BURST: Final = 256
NEVER: Final = -math.inf  # "appears before any clock": visible from the start, never published

_log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[bool]]


class StoredRows(Protocol):
    """What the timeline needs of a collection: its rows as served and as compared."""

    rows: list[dict[str, Any]]
    values: list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class ReplayRequest:
    """A checked `POST /__sandbox/replay` body."""

    session_key: int
    speed: float = 1.0
    from_seconds: float = 0.0

    @classmethod
    def from_json(cls, payload: Any, sessions: Mapping[int, Mapping[str, Any]]) -> ReplayRequest:
        """Validates the body against the sessions (parsed rows by key); ValueError says why."""
        if not isinstance(payload, dict):
            raise ValueError(
                'expected a JSON object {"session_key": int, "speed": number, '
                '"from_seconds": number}'
            )
        unknown = sorted(set(payload) - {"session_key", "speed", "from_seconds"})
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(unknown)}")
        key = payload.get("session_key")
        if type(key) is not int:
            raise ValueError("session_key must be an integer")
        session = sessions.get(key)
        if session is None:
            raise ValueError(f"unknown session_key {key}: no such session in the sandbox data")
        if session.get("is_cancelled") is True:
            raise ValueError(f"session {key} is cancelled")
        start, end = session.get("date_start"), session.get("date_end")
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            raise ValueError(f"session {key} has no date_start and date_end to replay")
        speed = _number(payload, "speed", 1.0)
        if not 0 < speed <= MAX_SPEED:
            raise ValueError(f"speed must be above 0 and at most {MAX_SPEED:g}, got {speed:g}")
        from_seconds = _number(payload, "from_seconds", 0.0)
        latest = (end - start).total_seconds() + LATEST_AFTER_END_SECONDS
        if not EARLIEST_SECONDS <= from_seconds <= latest:
            raise ValueError(
                f"from_seconds must lie in [{EARLIEST_SECONDS:g}, {latest:g}] (seconds from the "
                f"session's start, up to an hour before it and an hour after its end), "
                f"got {from_seconds:g}"
            )
        return cls(key, speed, from_seconds)


def _number(payload: dict[str, Any], name: str, default: float) -> Any:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return value


# ---------------------------------------------------------------------------------------------
# Timeline


@dataclass(frozen=True)
class Version:
    """One state of one row: from `at` (POSIX seconds on the replay clock) until a later one."""

    collection: str
    at: float
    seq: int  # order of appearance within the session
    key: str
    record: dict[str, Any]  # as served: JSON values, dates as stored


@dataclass(frozen=True)
class Timeline:
    """Every version of one session's rows, per collection and as one sequence."""

    session_key: int
    meeting_key: Any
    start: datetime
    end: datetime
    versions: dict[str, list[Version]]
    events: list[Version]  # all timed versions in order of `seq`


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _lap_starts_and_ends(laps: Sequence[dict[str, Any]]) -> dict[Any, tuple[float, float]]:
    """(start, completion) of each lap number of one driver (parsed rows); where OpenF1 left
    `date_start` or `lap_duration` null, the estimates the synthetic telemetry uses."""
    spans = {span.number: span for span in telemetry.lap_spans(laps)}
    found: dict[Any, tuple[float, float]] = {}
    for values in laps:
        number = values.get("lap_number")
        span = spans.get(number) if isinstance(number, int) else None
        began, duration = values.get("date_start"), values.get("lap_duration")
        if isinstance(began, datetime):
            start = _epoch(began)
        elif span is not None:
            start = span.start_ms / 1000
        else:
            continue
        if (
            isinstance(began, datetime)
            and isinstance(duration, int | float)
            and _positive(duration)
        ):
            end = start + float(duration)
        elif span is not None:
            end = span.end_ms / 1000
        else:
            end = start
        found[number] = (start, end)
    return found


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _row_keys(name: str, rows: list[dict[str, Any]]) -> list[str]:
    """`_key` of each stored row; a repeat of an earlier row's identity gets `_1`, `_2`, ..."""
    names = KEY_FIELDS.get(name)
    if names is None:
        names = ("session_key", "date") if any("date" in row for row in rows) else ()
    keys, used = [], dict[str, int]()
    for position, row in enumerate(rows):
        if names:
            key = "_".join(str(row.get(part)) for part in names)
        else:
            key = f"{row.get('session_key')}_{position}"
        seen = used.get(key, 0)
        used[key] = seen + 1
        keys.append(key if not seen else f"{key}_{seen}")
    return keys


LapTimes = dict[Any, dict[Any, tuple[float, float]]]  # driver -> lap number -> (start, end)


def _lap_times(laps: StoredRows | None, session_key: Any) -> LapTimes:
    by_driver: dict[Any, list[dict[str, Any]]] = {}
    for values in laps.values if laps else []:
        if values.get("session_key") == session_key:
            by_driver.setdefault(values.get("driver_number"), []).append(values)
    return {driver: _lap_starts_and_ends(rows) for driver, rows in by_driver.items()}


def build_timeline(collections: Mapping[str, StoredRows], session: Mapping[str, Any]) -> Timeline:
    """The versions of every row of `session` (a parsed sessions row) in `collections`."""
    session_key = session["session_key"]
    start, end = session["date_start"], session["date_end"]
    lap_times = _lap_times(collections.get("laps"), session_key)
    drafts: list[tuple[float, int, int, int, str, str, dict[str, Any]]] = []
    for order, name in enumerate(sorted(collections)):
        if name in SCHEDULE_COLLECTIONS:
            continue
        collection = collections[name]
        mine = [
            (row, values)
            for row, values in zip(collection.rows, collection.values, strict=True)
            if values.get("session_key") == session_key
        ]
        if not mine or not _is_timed(name, mine):
            continue
        keys = _row_keys(name, [row for row, _ in mine])
        for number, ((row, values), key) in enumerate(zip(mine, keys, strict=True)):
            found = _row_versions(name, row, values, lap_times, start, end)
            for step, (version_at, record) in enumerate(found):
                drafts.append((version_at, order, number, step, name, key, record))
    drafts.sort(key=lambda draft: draft[:4])
    versions: dict[str, list[Version]] = {}
    events: list[Version] = []
    for seq, (version_at, _, _, _, name, key, record) in enumerate(drafts):
        version = Version(name, version_at, seq, key, record)
        versions.setdefault(name, []).append(version)
        if version_at != NEVER:
            events.append(version)
    return Timeline(session_key, session.get("meeting_key"), start, end, versions, events)


def _is_timed(name: str, mine: list[tuple[dict[str, Any], dict[str, Any]]]) -> bool:
    if name in ("laps", "stints") or name in RESULT_COLLECTIONS:
        return True
    return any(isinstance(values.get("date"), datetime) for _, values in mine)


def _row_versions(
    name: str,
    row: dict[str, Any],
    values: dict[str, Any],
    lap_times: LapTimes,
    start: datetime,
    end: datetime,
) -> list[tuple[float, dict[str, Any]]]:
    """(appears at, record) of each version of one stored row, oldest first."""
    if name in RESULT_COLLECTIONS:
        return [(_epoch(end), row)]
    if name == "laps":
        found = lap_times.get(values.get("driver_number"), {}).get(values.get("lap_number"))
        if found is None:
            return [(NEVER, row)]
        began, completed = found
        if completed <= began:
            return [(began, row)]
        opening = {k: (v if k in LAP_START_FIELDS else None) for k, v in row.items()}
        return [(began, opening), (completed, row)]
    if name == "stints":
        return _stint_versions(row, values, lap_times, _epoch(start))
    moment = values.get("date")
    return [(_epoch(moment) if isinstance(moment, datetime) else NEVER, row)]


def _stint_versions(
    row: dict[str, Any], values: dict[str, Any], lap_times: LapTimes, session_start: float
) -> list[tuple[float, dict[str, Any]]]:
    """`lap_end` grows by one as each lap of the stint starts; the last version is the row."""
    times = lap_times.get(values.get("driver_number"))
    first, last = values.get("lap_start"), values.get("lap_end")
    if not times or not isinstance(first, int) or not isinstance(last, int) or last < first:
        return [(session_start, row)]
    found: list[tuple[float, dict[str, Any]]] = []
    moment = times[first][0] if first in times else session_start
    for lap in range(first, last + 1):
        if lap in times:
            moment = max(moment, times[lap][0])
        record = row if lap == last else {**row, "lap_end": lap}
        if found and found[-1][0] == moment:
            found[-1] = (moment, record)  # laps the data lacks: the same instant, newest wins
        else:
            found.append((moment, record))
    return found


# ---------------------------------------------------------------------------------------------
# The running replay


@dataclass
class Replay:
    """One replay: its clock and the task that publishes versions as the clock passes them."""

    timeline: Timeline
    speed: float
    from_seconds: float
    publish: Publish | None = None
    next_id: Callable[[], int] = field(default=lambda: 0)
    monotonic: Callable[[], float] = time.monotonic
    published: int = 0
    dropped: int = 0
    finished: bool = False
    origin: float = field(init=False)
    started: float = field(init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.origin = _epoch(self.timeline.start) + self.from_seconds
        self.started = self.monotonic()

    @property
    def session_key(self) -> int:
        return self.timeline.session_key

    def now(self) -> float:
        """The replay clock, POSIX seconds."""
        return self.origin + self.speed * (self.monotonic() - self.started)

    def clock(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def in_live_window(self) -> bool:
        """Whether OpenF1 would be in its live window: 30 min before start to 30 min after end."""
        now = self.clock()
        return self.timeline.start - LIVE_WINDOW <= now <= self.timeline.end + LIVE_WINDOW

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="openf1-replay")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def status(self) -> dict[str, Any]:
        return {
            "session_key": self.session_key,
            "meeting_key": self.timeline.meeting_key,
            "speed": self.speed,
            "from_seconds": self.from_seconds,
            "clock": self.clock().isoformat(timespec="milliseconds"),
            "live": self.in_live_window(),
            "finished": self.finished,
            "published": self.published,
            "dropped": self.dropped,
        }

    async def _run(self) -> None:
        """Sleeps until the next version is due, publishes every version due, and again."""
        events = self.timeline.events
        # The first version the clock has not passed yet.
        low, high = 0, len(events)
        while low < high:
            middle = (low + high) // 2
            if events[middle].at <= self.origin:
                low = middle + 1
            else:
                high = middle
        index = low
        while index < len(events):
            now = self.now()
            burst = 0
            while index < len(events) and events[index].at <= now:
                await self._emit(events[index])
                index += 1
                burst += 1
                if burst % BURST == 0:
                    await asyncio.sleep(0)
                    now = self.now()
            if index < len(events):
                await asyncio.sleep(max(0.0, (events[index].at - self.now()) / self.speed))
        self.finished = True

    async def _emit(self, version: Version) -> None:
        message = {**version.record, "_id": self.next_id(), "_key": version.key}
        sent = False
        if self.publish is not None:
            try:
                sent = await self.publish(f"v1/{version.collection}", orjson.dumps(message))
            except Exception:
                _log.exception("publishing a replayed row failed")
        if sent:
            self.published += 1
        else:
            self.dropped += 1
