"""Synthetic OpenF1 `car_data` and `location` rows, generated from the sandbox's real laps.

Nothing here is real telemetry. No real car_data or location was found to store (see
`data/openf1/SOURCE.md`), so the emulator makes samples that are consistent with the stored laps:

- One synthetic closed circuit (5,280 m of straights and constant-radius corners) gives a reference
  lap: a speed limit per corner radius, then forward (traction and drag) and backward (braking)
  passes give the speed, throttle and brake at every point.
- Each real lap replays that reference lap scaled to the lap's own time (slower laps have a lower
  speed everywhere); the position along the lap is read from the reference lap's time-distance
  table at the fraction of the lap's time elapsed, so it comes back to the start line once a lap.
- Pit-out laps begin with the pit lane at the 80 km/h limiter and are slower for the rest.
- Samples are every `SAMPLE_MS` (270 ms, about 3.7 Hz) plus a jitter of 0 to `JITTER_MS` - 1 ms from
  a fixed table of integer hashes, from the driver's first lap start to the end of the last lap.

Everything is a pure function of the laps and the (session, driver): same laps, same bytes.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from statistics import median
from typing import Any, Final

import orjson

__all__ = [
    "CAR_FIELDS",
    "COLLECTIONS",
    "JITTER_MS",
    "LOCATION_FIELDS",
    "SAMPLE_MS",
    "Trace",
    "generate",
]

COLLECTIONS: Final = ("car_data", "location")
# Field order of the documents OpenF1's ingestor builds (CarData, Location).
CAR_FIELDS: Final = ("rpm", "speed", "n_gear", "throttle", "brake", "drs")
LOCATION_FIELDS: Final = ("x", "y", "z")
SAMPLE_MS: Final = 270
JITTER_MS: Final = 11
# Location comes from another live-timing feed, so its samples do not share car_data's dates.
LOCATION_PHASE_MS: Final = 135

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND: Final = timedelta(milliseconds=1)

# --- the synthetic circuit ---------------------------------------------------------------------

LAP_LENGTH_M: Final = 5280.0
POINTS: Final = 2112  # 2.5 m apart
GRIP_M_S2: Final = 30.0  # mechanical lateral grip
DOWNFORCE_PER_M: Final = 0.0035  # extra lateral grip per (m/s)^2
BRAKE_M_S2: Final = 38.0
TRACTION_M_S2: Final = 12.0
DRAG_TOP_M_S: Final = 90.0  # where drag cancels traction
PIT_LIMIT_KMH: Final = 80.0
PIT_LANE_FRACTION: Final = 0.06
# Upper speed (km/h) of gears 1..7; 8th above the last. rpm runs 10,000-12,500 across a gear.
GEAR_TOPS: Final = (105, 140, 170, 200, 230, 260, 290)
GEAR_8_TOP: Final = 345
RPM_LOW, RPM_HIGH = 10_000, 12_500
# Decimetres, like OpenF1's x/y/z; the origin is arbitrary.
ORIGIN_DM: Final = (-2350, 1180)
DRS_OPEN_CODES: Final = (12, 14)
DRS_WARNING_M: Final = 200.0
DRS_DELAY_M: Final = 100.0

# (straight metres, 0) or (radius metres, signed turn degrees); turns add up to +360.
# Straights 0 and 6 take up whatever is needed to close the loop exactly.
_LAYOUT: Final = (
    ("S", 900.0),  # main straight
    ("C", 20.0, 90.0),  # turn 1
    ("S", 150.0),
    ("C", 80.0, -45.0),
    ("S", 100.0),
    ("C", 80.0, 45.0),
    ("S", 700.0),
    ("C", 40.0, 90.0),
    ("S", 1500.0),  # back straight
    ("C", 18.0, 100.0),  # hairpin
    ("S", 420.0),
    ("C", 60.0, -40.0),
    ("S", 100.0),
    ("C", 45.0, 60.0),
    ("S", 200.0),
    ("C", 150.0, 30.0),
    ("S", 250.0),
    ("C", 35.0, -45.0),
    ("S", 150.0),
    ("C", 30.0, 75.0),
    ("S", 100.0),
)


@dataclass(frozen=True)
class Circuit:
    """The reference lap at `POINTS` equally spaced points (index `POINTS` closes the loop)."""

    x: tuple[float, ...]  # metres
    y: tuple[float, ...]
    z: tuple[float, ...]
    speed: tuple[float, ...]  # km/h
    phase: tuple[int, ...]  # 0 full throttle, 1 cornering, 2 braking
    throttle_hint: tuple[int, ...]
    times: tuple[float, ...]  # seconds from the line, POINTS + 1 values
    drs: tuple[int, ...]  # 0 none, 1 warning (code 8 when eligible), 2 open zone

    @property
    def lap_time(self) -> float:
        return self.times[-1]


def _segments() -> list[tuple[float, float]]:
    """(length, curvature) pieces with straights 0 and 8 stretched so the loop closes."""
    pieces: list[tuple[float, float]] = []
    for item in _LAYOUT:
        if item[0] == "S":
            pieces.append((float(item[1]), 0.0))
        else:
            radius, degrees = float(item[1]), float(item[2])  # type: ignore[misc]
            angle = math.radians(degrees)
            pieces.append((radius * abs(angle), math.copysign(1 / radius, angle)))

    def walk(parts: list[tuple[float, float]]) -> tuple[float, float, list[float]]:
        x = y = heading = 0.0
        headings = []
        for length, curvature in parts:
            headings.append(heading)
            if curvature == 0:
                x += length * math.cos(heading)
                y += length * math.sin(heading)
            else:
                turn = length * curvature
                radius = 1 / curvature
                x += radius * (math.sin(heading + turn) - math.sin(heading))
                y -= radius * (math.cos(heading + turn) - math.cos(heading))
                heading += turn
        return x, y, headings

    gap_x, gap_y, headings = walk(pieces)
    first, second = 0, 6
    a, b = headings[first], headings[second]
    # Solve d1 * u(a) + d2 * u(b) = -gap for the two extra lengths.
    det = math.cos(a) * math.sin(b) - math.sin(a) * math.cos(b)
    d1 = (-gap_x * math.sin(b) + gap_y * math.cos(b)) / det
    d2 = (math.cos(a) * -gap_y + math.sin(a) * gap_x) / det
    pieces[first] = (pieces[first][0] + d1, 0.0)
    pieces[second] = (pieces[second][0] + d2, 0.0)
    return pieces


@cache
def circuit() -> Circuit:
    pieces = _segments()
    total = sum(length for length, _ in pieces)
    scale = LAP_LENGTH_M / total
    pieces = [(length * scale, curvature / scale) for length, curvature in pieces]
    step = LAP_LENGTH_M / POINTS
    curvature: list[float] = []
    straight_run: list[int] = []  # index of the straight a point lies on, -1 in corners
    xs: list[float] = []
    ys: list[float] = []
    x = y = heading = 0.0
    piece, into = 0, 0.0
    for _ in range(POINTS):
        length, kappa = pieces[piece]
        curvature.append(abs(kappa))
        straight_run.append(piece if kappa == 0 else -1)
        xs.append(x)
        ys.append(y)
        # Advance one step, possibly across piece ends.
        remaining = step
        while remaining > 1e-9:
            length, kappa = pieces[piece]
            move = min(remaining, length - into)
            if kappa == 0:
                x += move * math.cos(heading)
                y += move * math.sin(heading)
            else:
                radius = 1 / kappa
                x += radius * (math.sin(heading + move * kappa) - math.sin(heading))
                y -= radius * (math.cos(heading + move * kappa) - math.cos(heading))
                heading += move * kappa
            into += move
            remaining -= move
            if length - into <= 1e-9:
                piece, into = (piece + 1) % len(pieces), 0.0

    # Speed limits from grip: v^2 = R * (grip + downforce * v^2).
    limits = []
    for kappa in curvature:
        radius = math.inf if kappa == 0 else 1 / kappa
        if radius * DOWNFORCE_PER_M >= 1:
            limits.append(math.inf)
        else:
            limits.append(math.sqrt(radius * GRIP_M_S2 / (1 - radius * DOWNFORCE_PER_M)))
    start = min(range(POINTS), key=lambda i: limits[i])
    # Forward pass (traction falling with drag) and backward pass (braking), twice round.
    forward = [0.0] * POINTS
    v = limits[start]
    for n in range(2 * POINTS):
        i = (start + n) % POINTS
        v = min(v, limits[i])
        forward[i] = v
        accel = max(0.0, TRACTION_M_S2 * (1 - (v / DRAG_TOP_M_S) ** 2))
        v = math.sqrt(v * v + 2 * accel * step)
    speed = forward[:]
    v = limits[start]
    for n in range(2 * POINTS):
        i = (start - n) % POINTS
        v = min(v, speed[i])
        speed[i] = v
        v = math.sqrt(v * v + 2 * BRAKE_M_S2 * step)
    phase = []
    for i in range(POINTS):
        if speed[i] < forward[i] - 0.05:
            phase.append(2)
        elif limits[i] - speed[i] < 0.5:
            phase.append(1)
        else:
            phase.append(0)
    hints = [
        100 if p == 0 else 0 if p == 2 else int(25 + 50 * speed[i] / max(speed))
        for i, p in enumerate(phase)
    ]
    times = [0.0]
    for i in range(POINTS):
        average = (speed[i] + speed[(i + 1) % POINTS]) / 2
        times.append(times[-1] + step / average)

    # DRS: the two longest straights, open from DRS_DELAY_M in until braking starts.
    runs: dict[int, list[int]] = {}
    for i, run in enumerate(straight_run):
        if run >= 0:
            runs.setdefault(run, []).append(i)
    longest = sorted(runs.values(), key=len, reverse=True)[:2]
    drs = [0] * POINTS
    for points in longest:
        opened = int(DRS_DELAY_M / step)
        for i in points[opened:]:
            if phase[i] == 0:
                drs[i] = 2
        for back in range(1, int(DRS_WARNING_M / step) + 1):
            i = (points[opened] - back) % POINTS
            if drs[i] == 0:
                drs[i] = 1
    z = [
        18.0 + 4.0 * math.sin(2 * math.pi * i / POINTS) + 1.5 * math.sin(6 * math.pi * i / POINTS)
        for i in range(POINTS)
    ]
    close = (xs[0], ys[0], z[0])
    return Circuit(
        x=(*xs, close[0]),
        y=(*ys, close[1]),
        z=(*z, close[2]),
        speed=tuple(v * 3.6 for v in (*speed, speed[0])),
        phase=(*phase, phase[0]),
        throttle_hint=(*hints, hints[0]),
        times=tuple(times),
        drs=(*drs, drs[0]),
    )


# --- laps to time spans ------------------------------------------------------------------------


@dataclass(frozen=True)
class LapSpan:
    """One lap on the clock: from its start to the next lap's start (or start + duration)."""

    number: int
    start_ms: int
    end_ms: int
    pit_out: bool


def _epoch_ms(value: datetime) -> int:
    return (value - EPOCH) // MILLISECOND


def _duration(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def lap_spans(laps: Iterable[Mapping[str, Any]]) -> list[LapSpan]:
    """The laps of one driver on the clock; [] when no lap can be placed.

    A null `lap_duration` counts as the driver's median lap. A null `date_start` (OpenF1 leaves
    the first lap's out) is the next lap's start minus this lap's duration."""
    ordered = sorted(laps, key=lambda lap: int(lap["lap_number"]))
    given = [_duration(lap.get("lap_duration")) for lap in ordered]
    known = [value for value in given if value is not None]
    if not known:
        return []
    typical = median(known)
    durations = [round(1000 * (typical if value is None else value)) for value in given]
    starts: list[int | None] = [
        _epoch_ms(lap["date_start"]) if isinstance(lap.get("date_start"), datetime) else None
        for lap in ordered
    ]
    for k in range(len(starts) - 2, -1, -1):
        following = starts[k + 1]
        if starts[k] is None and following is not None:
            starts[k] = following - durations[k]
    for k in range(1, len(starts)):
        previous = starts[k - 1]
        if starts[k] is None and previous is not None:
            starts[k] = previous + durations[k - 1]
    spans = []
    for k, lap in enumerate(ordered):
        start = starts[k]
        if start is None:
            return []
        following = starts[k + 1] if k + 1 < len(starts) else None
        end = following if following is not None and following > start else start + durations[k]
        spans.append(LapSpan(int(lap["lap_number"]), start, end, lap.get("is_pit_out_lap") is True))
    return spans


# --- samples -----------------------------------------------------------------------------------

_MASK: Final = (1 << 64) - 1


def _mix(*values: int) -> int:
    """A fixed 64-bit integer hash (splitmix-style): the only source of variation."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h = ((h ^ (value & _MASK)) * 0xBF58476D1CE4E5B9) & _MASK
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _MASK
        h ^= h >> 29
    return h


_NOISE_SIZE: Final = 1 << 14


@cache
def _noise() -> tuple[int, ...]:
    """Fixed hashed integers for the per-sample variation (a table: hashing every sample costs
    more than the rest of a sample)."""
    return tuple(_mix(n, 0x5A) for n in range(_NOISE_SIZE))


@dataclass(frozen=True)
class _LapPlan:
    span: LapSpan
    pit_seconds: float  # at the limiter from the line (pit-out laps), else 0
    pit_distance: float  # metres covered at the limiter
    reference_from: float  # reference-lap seconds where racing speed resumes
    scale: float  # reference-lap seconds per real second once racing
    drs: bool
    drs_open: int
    drs_off: int


def _plan(span: LapSpan, session_key: int, driver_number: int) -> _LapPlan:
    track = circuit()
    seconds = (span.end_ms - span.start_ms) / 1000
    pit_distance = PIT_LANE_FRACTION * LAP_LENGTH_M if span.pit_out else 0.0
    pit_seconds = pit_distance / (PIT_LIMIT_KMH / 3.6)
    index = round(pit_distance / (LAP_LENGTH_M / POINTS))
    reference_from = track.times[index]
    racing = seconds - pit_seconds
    scale = (track.lap_time - reference_from) / racing if racing > 0 else 0.0
    if not 0.5 <= scale <= 1.2:  # the lap is too short for a pit lane: replay it whole
        pit_distance = pit_seconds = reference_from = 0.0
        scale = track.lap_time / seconds
    h = _mix(session_key, driver_number, span.number, 0xD25)
    return _LapPlan(
        span=span,
        pit_seconds=pit_seconds,
        pit_distance=pit_distance,
        reference_from=reference_from,
        scale=scale,
        drs=span.number >= 3 and not span.pit_out and h % 10 < 3,
        drs_open=DRS_OPEN_CODES[(h >> 8) % 2],
        drs_off=1 if (h >> 16) % 5 == 0 else 0,
    )


@dataclass(frozen=True)
class Trace:
    """One (collection, session, driver) block of samples as columns, in date order."""

    collection: str
    meeting_key: int
    session_key: int
    driver_number: int
    dates_ms: array[int]
    columns: dict[str, array[int]]

    @property
    def fields(self) -> tuple[str, ...]:
        return CAR_FIELDS if self.collection == "car_data" else LOCATION_FIELDS

    def __len__(self) -> int:
        return len(self.dates_ms)

    def date(self, position: int) -> datetime:
        return EPOCH + MILLISECOND * self.dates_ms[position]

    def dates(self) -> list[datetime]:
        return [EPOCH + MILLISECOND * ms for ms in self.dates_ms]

    def record(self, position: int) -> dict[str, Any]:
        """Row `position` as OpenF1 stores it (its date a datetime)."""
        row: dict[str, Any] = {
            "meeting_key": self.meeting_key,
            "session_key": self.session_key,
            "driver_number": self.driver_number,
            "date": self.date(position),
        }
        for name in self.fields:
            row[name] = self.columns[name][position]
        return row

    def encode(self) -> tuple[bytes, array[int]]:
        """All rows as JSON joined by commas, and where each starts: row i is
        `buffer[offsets[i]:offsets[i + 1] - 1]` (offsets has one extra entry).

        The bytes are what orjson makes of `record(i)` with the date as `isoformat()` (whole
        seconds without a fraction, else microseconds; `+00:00`), written by a template."""
        head = orjson.dumps(
            {
                "meeting_key": self.meeting_key,
                "session_key": self.session_key,
                "driver_number": self.driver_number,
            }
        )
        opening = head[:-1] + b',"date":"'
        template = (
            "".join(f',"{name}":%d' for name in self.fields).replace(",", '",', 1) + "}"
        ).encode()
        columns = [self.columns[name] for name in self.fields]
        parts = []
        second_of = -1
        stamp = b""
        for ms, *values in zip(self.dates_ms, *columns, strict=True):
            second, milli = divmod(ms, 1000)
            if second != second_of:
                second_of = second
                moment = EPOCH + timedelta(seconds=second)
                stamp = opening + moment.replace(tzinfo=None).isoformat().encode()
            tail = b".%03d000+00:00" % milli if milli else b"+00:00"
            parts.append(stamp + tail + template % tuple(values))
        offsets = array("I", [0])
        at = 0
        for body in parts:
            at += len(body) + 1
            offsets.append(at)
        return b",".join(parts), offsets


def _sample_times(spans: list[LapSpan], salt: int, phase_ms: int) -> list[int]:
    first, last = spans[0].start_ms + phase_ms, spans[-1].end_ms
    count = max(0, (last - first + SAMPLE_MS - 1) // SAMPLE_MS)
    noise, mask = _noise(), _NOISE_SIZE - 1
    times = [first + SAMPLE_MS * i + noise[(salt + 7 * i) & mask] % JITTER_MS for i in range(count)]
    while times and times[-1] >= last:
        times.pop()
    return times


@cache
def _gears() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Gear and rpm (before noise) for each whole km/h from 0 to 499."""
    gears, rpms = [], []
    for speed in range(500):
        gear = bisect_right(GEAR_TOPS, speed) + 1
        low = GEAR_TOPS[gear - 2] if gear > 1 else 0
        high = GEAR_TOPS[gear - 1] if gear < 8 else GEAR_8_TOP
        share = min(max((speed - low) / (high - low), 0.0), 1.0)
        gears.append(gear)
        rpms.append(round(RPM_LOW + (RPM_HIGH - RPM_LOW) * share))
    return tuple(gears), tuple(rpms)


def generate(
    collection: str,
    laps: Iterable[Mapping[str, Any]],
    *,
    meeting_key: int,
    session_key: int,
    driver_number: int,
) -> Trace | None:
    """The synthetic samples of one driver's session, or None without usable laps."""
    if collection not in COLLECTIONS:
        raise ValueError(f"no synthetic {collection}")
    spans = lap_spans(laps)
    if not spans:
        return None
    plans = [_plan(span, session_key, driver_number) for span in spans]
    is_car = collection == "car_data"
    salt = _mix(session_key, driver_number, 1 if is_car else 2)
    times = _sample_times(spans, salt, 0 if is_car else LOCATION_PHASE_MS)
    # Plain locals and lists in the loop: it runs ~20,000 times a block.
    track = circuit()
    per_metre = POINTS / LAP_LENGTH_M
    pit_speed = PIT_LIMIT_KMH / 3.6
    last_point = POINTS - 1
    ref_times, ref_speed, phases, hints, zones = (
        track.times,
        track.speed,
        track.phase,
        track.throttle_hint,
        track.drs,
    )
    xs, ys, zs = track.x, track.y, track.z
    gears, rpms = _gears()
    noise, mask = _noise(), _NOISE_SIZE - 1
    columns: list[list[int]] = [[] for _ in (CAR_FIELDS if is_car else LOCATION_FIELDS)]
    dates: list[int] = []
    lap, plan = 0, plans[0]
    start, end = plan.span.start_ms, plan.span.end_ms
    was_open = False
    for i, ms in enumerate(times):
        while ms >= end and lap + 1 < len(plans):
            lap += 1
            plan = plans[lap]
            start, end = plan.span.start_ms, plan.span.end_ms
            was_open = False
        if ms < start:  # a gap between laps: no car on track to sample
            continue
        h = noise[(salt + i) & mask]
        elapsed = (ms - start) / 1000
        limiter = elapsed < plan.pit_seconds
        if limiter:
            where = elapsed * pit_speed * per_metre
            j = int(where)
            frac = where - j
        else:
            tau = plan.reference_from + (elapsed - plan.pit_seconds) * plan.scale
            j = bisect_right(ref_times, tau) - 1
            if j > last_point:
                j, frac = last_point, 1.0
            else:
                frac = (tau - ref_times[j]) / (ref_times[j + 1] - ref_times[j])
        dates.append(ms)
        row: tuple[int, ...]
        if is_car:
            nearest = j + 1 if frac >= 0.5 else j
            if limiter:
                speed = 80 - (h & 1)
                throttle, brake = 22 + (h >> 8) % 9, 0
            else:
                v = ref_speed[j] + frac * (ref_speed[j + 1] - ref_speed[j])
                speed = int(plan.scale * v + 0.5) + (h % 3) - 1
                phase = phases[nearest]
                if phase == 2:
                    throttle, brake = 0, 100
                elif phase == 1:
                    throttle = min(100, hints[nearest] + (h >> 8) % 11 - 5)
                    brake = 0
                else:
                    throttle, brake = (100 if (h >> 8) % 6 else 99), 0
            zone = zones[nearest] if plan.drs and not limiter else 0
            if zone == 2:
                drs = plan.drs_open if was_open else 10
                was_open = True
            else:
                drs = 8 if zone == 1 else plan.drs_off
                was_open = False
            row = (rpms[speed] + (h >> 12) % 81 - 40, speed, gears[speed], throttle, brake, drs)
        else:
            row = (
                ORIGIN_DM[0] + round(10 * (xs[j] + frac * (xs[j + 1] - xs[j]))) + h % 5 - 2,
                ORIGIN_DM[1] + round(10 * (ys[j] + frac * (ys[j + 1] - ys[j]))) + (h >> 8) % 5 - 2,
                round(10 * (zs[j] + frac * (zs[j + 1] - zs[j]))),
            )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    names = CAR_FIELDS if is_car else LOCATION_FIELDS
    out = {name: array("i", column) for name, column in zip(names, columns, strict=True)}
    return Trace(collection, meeting_key, session_key, driver_number, array("q", dates), out)
