"""Synthetic parameter samples for the SQL Race emulator (`sqlrace.py`); no sample is real.

What the data endpoints serve (`.../parameters/{ids}/{frequencyHz}/data`, `/count`, `/timeRanges`):

- **Native ("recorded") rate** of a parameter is the `Frequency` the emulator lists for it
  (`vCar`, `nEngine`, `rThrottle`, brakes, steering: 200 Hz; `gLat`/`gLong`/ride heights: 500 Hz;
  `sLap`: 100 Hz; `NGear`, tyre surface temperatures: 50 Hz; slow channels 10 Hz; fuel 1 Hz).
  Native sample `n` of a session sits at `StartTime + n / rate` and exists while it is before
  `EndTime`.
- **Output grid**: sample `j` of a request at `f` Hz sits at `StartTime + round(j * 1e7 / f)`
  ticks (100 ns), for every `j` before `EndTime`; `from`/`to`/`lap` only select a part of that
  grid, so every window is a subset of the whole-session answer.
- **Aggregation** (`{id};First|Mean|Min|Max`, case-insensitive; **Mean when absent**): when `f` is
  at most the native rate, sample `j` aggregates the native samples in `[t_j, t_j+1)` (the last
  interval stops at `EndTime`); `First` is the first native sample at or after `t_j`. When `f` is
  above the native rate every aggregation gives the latest native sample at or before `t_j`
  (sample-and-hold). Native values are whole multiples of each channel's precision (e.g. 0.01 km/h,
  1 rpm); Mean is their exact average, so Min <= Mean <= Max holds exactly.
- **Determinism**: each session's track, laps and constants are seeded from the circuit, the
  session key and the lap number, each channel's noise from the session key and parameter id;
  nothing reads global random state or the clock. Values are computed from time (lap phase
  lookups in a per-circuit lap table), so a request costs only its own window.

The car model: a per-circuit track (seeded corners and straights) is driven by a simple lap
simulation (acceleration, braking and grip limits, speed-dependent downforce) fitted to the
circuit's lap time. Flying laps scale that lap to their own lap time; the out lap starts from the
pit box with an 80 km/h pit lane, the in lap ends stopped in it, both at a warm-up/cool-down pace;
after the in lap the car stands in the garage until `EndTime` (speed 0, gear 0 = neutral, idle).
Gear follows speed through fixed shift speeds and rpm follows speed within the gear.
"""

from __future__ import annotations

import itertools
import math
import operator
import random
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

__all__ = [
    "AGGREGATIONS",
    "CHANNELS",
    "DEFAULT_AGGREGATION",
    "Grid",
    "Run",
    "SampleQueryError",
    "parse_frequency",
    "parse_time_of_day",
    "series",
]

TICKS_PER_SECOND = 10_000_000
TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
AGGREGATIONS = ("First", "Mean", "Min", "Max")
DEFAULT_AGGREGATION = "Mean"
G = 9.80665

_R = 8192  # lap table points (time phase); tables carry one extra point as a guard
_NOISE = 4099  # noise table length (prime, so it never lines up with a lap)
_DS = 2.0  # lap simulation step, metres
_VTOP = 348.0 / 3.6  # m/s where drag equals drive
_PIT = 80.0 / 3.6
_PIT_LANE = 340.0  # metres of pit lane at each end of an out/in lap
_IDLE = 4000.0
# Gear g is engaged from _SHIFT[g - 1] km/h up; rpm = speed * 11900 / (top speed of the gear).
_SHIFT = (0.0, 98.0, 132.0, 163.0, 194.0, 226.0, 258.0, 290.0)
_GEAR_TOP = (*_SHIFT[1:], 352.0)
_GEAR_OF = tuple(
    max(g + 1 for g in range(8) if v >= _SHIFT[g]) if v >= 1 else 0 for v in range(401)
)
_RPM_PER_KPH = (0.0, *(11_900.0 / top for top in _GEAR_TOP))


class SampleQueryError(Exception):
    """A request the data endpoints refuse: `status` 400 or 404 with a message."""

    def __init__(self, status: int, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class Run:
    """What the generator needs of a session: ticks since midnight of the recording day."""

    key: str
    circuit: str
    lap_seconds: float
    start: int
    end: int
    laps: tuple[tuple[int, str, int, int], ...]  # (number, name, start, end)


# --- parsing ----------------------------------------------------------------------------------

_TIME = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?")


def parse_time_of_day(text: str) -> int:
    """`[d.]hh:mm[:ss[.fffffff]]` (a .NET TimeSpan, time of day) to ticks since midnight."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    days, hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds or 0) > 59:
        raise ValueError(text)
    whole = int(days or 0) * 86_400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
    return whole * TICKS_PER_SECOND + int((fraction or "").ljust(7, "0"))


def parse_frequency(text: str) -> Fraction:
    """A positive number of samples per second, at most 10 kHz (`100`, `2.5`, `0.1`)."""
    try:
        if not re.fullmatch(r"\d+(\.\d+)?", text):
            raise ValueError(text)
        hz = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise SampleQueryError(
            400, "The request is invalid.", f"'{text}' is not a valid frequency."
        ) from None
    if hz <= 0 or hz > 10_000:
        raise SampleQueryError(
            400,
            "The request is invalid.",
            f"The frequency must be above 0 and at most 10000 Hz, not '{text}'.",
        )
    return hz


# --- the output grid --------------------------------------------------------------------------


class Grid:
    """Sample `j` of a request at `hz` sits at `start + round(j * 1e7 / hz)` ticks, before `end`."""

    def __init__(self, start: int, end: int, hz: Fraction) -> None:
        period = Fraction(TICKS_PER_SECOND) / hz
        self.start, self.end = start, end
        self.num, self.den = period.numerator, period.denominator
        self.total = self.index_at(end) if end > start else 0

    def offset(self, j: int) -> int:
        return (2 * j * self.num + self.den) // (2 * self.den)

    def index_at(self, ticks: int) -> int:
        """The first sample at or after `ticks`."""
        x = ticks - self.start
        if x <= 0:
            return 0
        return max(0, -((self.den - 2 * self.den * x) // (2 * self.num)))

    def window(self, lo: int, hi: int) -> tuple[int, int]:
        """Samples with `lo <= time < hi`, as a range of indices."""
        first = self.index_at(max(lo, self.start))
        last = min(self.index_at(min(hi, self.end)), self.total)
        return first, max(first, last)

    def offsets(self, j0: int, j1: int) -> list[int]:
        num2, den, den2 = 2 * self.num, self.den, 2 * self.den
        return [(j * num2 + den) // den2 for j in range(j0, j1)]


# --- the track --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """One lap, sampled at `_R` equal steps of its time: every channel the car model reads."""

    kph: list[float]
    glat: list[float]
    glong: list[float]
    throttle: list[int]  # 0.1 %
    brake: list[float]  # 0..1 demand
    steer: list[float]
    dist: list[int]  # 0.1 m
    drs: list[int]
    seconds: float
    # Derived from the table's own speed: a lap's speed scale stretches the shift speeds.
    gear: list[int]
    rpm: list[float]
    ride_front: list[float]  # mm
    ride_rear: list[float]

    @classmethod
    def build(
        cls,
        kph: list[float],
        glat: list[float],
        glong: list[float],
        throttle: list[float],
        brake: list[float],
        steer: list[float],
        dist: list[float],
        drs: list[float],
        seconds: float,
    ) -> _Table:
        gear = [_GEAR_OF[min(400, int(v))] for v in kph]
        return cls(
            kph=kph,
            glat=glat,
            glong=glong,
            throttle=[round(t * 10) for t in throttle],
            brake=brake,
            steer=steer,
            dist=[round(d * 10) for d in dist],
            drs=[round(z) for z in drs],
            seconds=seconds,
            gear=gear,
            rpm=[max(_IDLE, v * _RPM_PER_KPH[g]) for v, g in zip(kph, gear, strict=True)],
            ride_front=[31.0 - 0.00011 * v * v - 5.0 * b for v, b in zip(kph, brake, strict=True)],
            ride_rear=[68.0 - 0.00022 * v * v + 4.0 * b for v, b in zip(kph, brake, strict=True)],
        )


@dataclass(frozen=True)
class _Track:
    flying: _Table
    out: _Table
    inlap: _Table
    length: float


def _accel(v: float) -> float:
    return 13.5 * max(0.0, 1.0 - (v / _VTOP) ** 2)


def _decel(v: float) -> float:
    return 22.0 + 28.0 * (v / 90.0) ** 2


def _grip(v: float) -> float:
    return G * (1.6 + 2.6 * (v / 80.0) ** 2)


@dataclass
class _Layout:
    limit: list[float]  # m/s per step (inf on straights)
    kappa: list[float]  # signed curvature 1/m
    zone: list[int]  # 0 none, 1 DRS detection, 2 DRS zone


def _layout(corners: Sequence[tuple[float, float, int]], straights: Sequence[float]) -> _Layout:
    """Corners (apex m/s, turn radians, direction) joined by straights; the lap starts part-way
    along the main straight (the last one), which is split across the line."""
    limit: list[float] = []
    kappa: list[float] = []
    zone: list[int] = []
    main = straights[-1]
    longest = max(range(len(straights) - 1), key=lambda k: straights[k])

    def straight(metres: float, drs: bool) -> None:
        steps = max(1, round(metres / _DS))
        opened = round(60 / _DS)
        for i in range(steps):
            limit.append(math.inf)
            kappa.append(0.0)
            zone.append(2 if drs and i >= opened else 0)

    straight(main * 0.7, True)
    for k, (apex, angle, direction) in enumerate(corners):
        curve = _grip(apex) / apex**2
        ramp = round(16 / _DS)
        arc = max(2, round(angle / curve / _DS))
        for i in range(ramp):
            limit.append(math.inf)
            kappa.append(direction * curve * (i + 0.5) / ramp)
            zone.append(0)
        for _ in range(arc):
            limit.append(apex)
            kappa.append(direction * curve)
            zone.append(0)
        for i in range(ramp):
            limit.append(math.inf)
            kappa.append(direction * curve * (ramp - i - 0.5) / ramp)
            zone.append(0)
        if k < len(corners) - 1:
            straight(straights[k], k == longest)
    straight(main * 0.3, True)
    # DRS detection: the stretch before each zone arms it.
    armed = round(150 / _DS)
    for i in range(len(zone)):
        if zone[i] == 2 and zone[i - 1] == 0:
            for back in range(1, armed + 1):
                if zone[i - back] == 0:
                    zone[i - back] = 1
    return _Layout(limit, kappa, zone)


def _drive(
    limit: list[float],
    gentle: bool,
    periodic: bool,
    v_first: float | None = None,
    v_last: float | None = None,
) -> list[float]:
    """Speeds (m/s) at each step: grip limits, then accelerating forwards and braking backwards.
    `gentle` is the out/in lap's warm-up pace: softer acceleration and braking."""
    n = len(limit)
    v = [min(lim, _VTOP * 1.2) for lim in limit] * (3 if periodic else 1)
    v[0] = min(v[0], _VTOP if v_first is None else v_first)
    a_scale, b_scale = (0.6, 0.55) if gentle else (1.0, 1.0)
    for i in range(len(v) - 1):
        v[i + 1] = min(v[i + 1], math.sqrt(v[i] ** 2 + 2 * a_scale * _accel(v[i]) * _DS))
    if v_last is not None:
        v[-1] = min(v[-1], v_last)
    for i in range(len(v) - 2, -1, -1):
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + 2 * b_scale * _decel(v[i + 1]) * _DS))
    return v[n : 2 * n] if periodic else v


def _seconds(v: list[float]) -> list[float]:
    clock = [0.0]
    for a, b in zip(v, [*v[1:], v[-1]], strict=True):
        clock.append(clock[-1] + _DS / max(0.5, (a + b) / 2))
    return clock


def _table(layout: _Layout, v: list[float], drs: bool) -> _Table:
    clock = _seconds(v)
    total = clock[-1]
    dt = total / _R
    kph: list[float] = []
    glat: list[float] = []
    steer: list[float] = []
    dist: list[float] = []
    zone: list[float] = []
    i, n = 0, len(v)
    for j in range(_R + 1):
        t = min(j * dt, total)
        while i < n - 1 and clock[i + 1] <= t:
            i += 1
        span = clock[i + 1] - clock[i]
        frac = (t - clock[i]) / span if span > 0 else 0.0
        speed = v[i] + frac * ((v[i + 1] if i + 1 < n else v[i]) - v[i])
        k = layout.kappa[i]
        kph.append(speed * 3.6)
        glat.append(speed * speed * k / G)
        steer.append(math.copysign(math.degrees(math.atan(3.6 * abs(k))) * 13.0, k))
        dist.append((i + frac) * _DS)
        zone.append(float(layout.zone[i]) if drs else 0.0)
    raw = [
        (kph[min(j + 1, _R)] - kph[max(j - 1, 0)]) / 3.6 / (dt * (min(j + 1, _R) - max(j - 1, 0)))
        for j in range(_R + 1)
    ]
    glong = [
        sum(raw[max(0, j - 2) : j + 3]) / len(raw[max(0, j - 2) : j + 3]) / G for j in range(_R + 1)
    ]
    throttle: list[float] = []
    brake: list[float] = []
    for speed, gl in zip(kph, glong, strict=True):
        if gl < -0.4:
            throttle.append(0.0)
            brake.append(min(1.0, (-gl - 0.4) / 4.6 + 0.15))
        elif speed < 0.5:
            throttle.append(0.0)
            brake.append(0.0)
        elif gl > 0.12 or speed > 325:
            throttle.append(100.0 if speed > 90 else 70.0 + speed / 3)
            brake.append(0.0)
        else:
            throttle.append(min(100.0, 22.0 + speed / 6))
            brake.append(0.0)
    drs_flag = [0.0 if z == 2 and gl < -0.4 else z for z, gl in zip(zone, glong, strict=True)]
    return _Table.build(kph, glat, glong, throttle, brake, steer, dist, drs_flag, total)


@lru_cache(maxsize=16)
def _track(circuit: str, lap_seconds: float) -> _Track:
    rng = random.Random(f"sqlrace-samples/track/{circuit}")
    count = max(10, min(19, round(lap_seconds / 6) + rng.randint(-2, 2)))
    corners: list[tuple[float, float, int]] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.3:
            apex, angle = rng.uniform(70, 110), rng.uniform(70, 170)
        elif roll < 0.7:
            apex, angle = rng.uniform(120, 205), rng.uniform(40, 110)
        else:
            apex, angle = rng.uniform(210, 285), rng.uniform(25, 70)
        corners.append((apex / 3.6, math.radians(angle), rng.choice((-1, 1))))
    straights = [rng.uniform(60, 520) for _ in range(count - 1)] + [rng.uniform(950, 1200)]
    straights[rng.randrange(count - 1)] = rng.uniform(700, 900)
    layout = _layout(corners, straights)
    for _ in range(6):  # stretch the straights until the lap takes the circuit's lap time
        v = _drive(layout.limit, gentle=False, periodic=True)
        ratio = lap_seconds / _seconds(v)[-1]
        if abs(ratio - 1) < 0.002:
            break
        straights = [max(30.0, s * ratio**1.6) for s in straights]
        layout = _layout(corners, straights)
    flying_v = _drive(layout.limit, gentle=False, periodic=True)
    steps = len(layout.limit)
    pit = round(_PIT_LANE / _DS)
    slow = [lim * 0.8 for lim in layout.limit]  # warm-up / cool-down: 80 % of corner speeds
    out_limit = [_PIT if i < pit else lim for i, lim in enumerate(slow)]
    in_limit = [_PIT if i >= steps - pit else lim for i, lim in enumerate(slow)]
    out_v = _drive(out_limit, gentle=True, periodic=False, v_first=0.0)
    in_v = _drive(in_limit, gentle=True, periodic=False, v_first=flying_v[0] * 0.85, v_last=0.0)
    return _Track(
        flying=_table(layout, flying_v, drs=True),
        out=_table(layout, out_v, drs=False),
        inlap=_table(layout, in_v, drs=False),
        length=steps * _DS,
    )


_ZEROS = [0.0] * (_R + 1)
_STOPPED = _Table.build(_ZEROS, _ZEROS, _ZEROS, _ZEROS, _ZEROS, _ZEROS, _ZEROS, _ZEROS, 1.0)


# --- a session's plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    start: int
    end: int
    table: _Table
    scale: float  # speed factor: the table's lap time over this lap's
    bias: float  # brake balance, % front
    flying: bool


@dataclass(frozen=True)
class _Plan:
    run: Run
    segments: tuple[_Segment, ...]
    ambient: float
    fuel_start: float
    fuel_end: float
    on_track_until: int  # ticks since start
    tyres: tuple[float, float, float, float]
    phase: float


@lru_cache(maxsize=256)
def _plan(run: Run) -> _Plan:
    track = _track(run.circuit, run.lap_seconds)
    segments: list[_Segment] = []
    bias = 56.0
    for number, name, start, end in run.laps:
        rng = random.Random(f"sqlrace-samples/{run.key}/lap/{number}")
        bias = 56.0 + 0.5 * rng.randint(-3, 3)
        table = {"Out Lap": track.out, "In Lap": track.inlap}.get(name, track.flying)
        seconds = (end - start) / TICKS_PER_SECOND
        scale = max(0.8, min(1.15, table.seconds / seconds)) if seconds > 0 else 1.0
        segments.append(_Segment(start, end, table, scale, bias, table is track.flying))
    last = run.laps[-1][3] if run.laps else run.start
    if run.end > last:
        segments.append(_Segment(last, run.end, _STOPPED, 1.0, bias, False))
    rng = random.Random(f"sqlrace-samples/{run.key}/session")
    laps = max(1, len(run.laps) - 2)
    fuel_end = rng.uniform(1.5, 6.0)
    return _Plan(
        run=run,
        segments=tuple(segments),
        ambient=rng.uniform(22.0, 36.0),
        fuel_start=min(110.0, fuel_end + 1.7 * (laps + 2) + rng.uniform(0, 3)),
        fuel_end=fuel_end,
        on_track_until=max(1, last - run.start),
        tyres=(
            rng.uniform(1.36, 1.44),
            rng.uniform(1.36, 1.44),
            rng.uniform(1.30, 1.38),
            rng.uniform(1.30, 1.38),
        ),
        phase=rng.uniform(0, 2 * math.pi),
    )


# --- channels ---------------------------------------------------------------------------------
# Native samples are integers in units of the channel's precision (10**-digits): no rounding
# calls on the hot path, and Min <= Mean <= Max holds exactly once divided back.


@lru_cache(maxsize=1024)
def _noise(key: str, parameter: str, sigma: float, offset: float) -> list[float]:
    rng = random.Random(f"sqlrace-samples/{key}/noise/{parameter}")
    return [rng.gauss(0.0, sigma) + offset for _ in range(_NOISE)]


@dataclass(frozen=True)
class _Span:
    """Native samples `ns` of one parameter inside one segment, and their lap table indices."""

    plan: _Plan
    segment: _Segment
    ns: range
    idx: list[int]
    noise: list[float]  # sigma and the +0.5 of rounding baked in, in channel units
    step: int  # ticks between native samples

    def seconds(self) -> list[float]:
        """Seconds since the session start of each native sample."""
        k = self.step / TICKS_PER_SECOND
        return [n * k for n in self.ns]


Evaluator = Callable[[_Span], list[int]]


def _speed(s: _Span) -> list[int]:
    # Relative noise (sigma 0.1 %): exactly 0 when stopped, never negative.
    v, k, nz = s.segment.table.kph, 100.0 * s.segment.scale, s.noise
    return [int(v[i] * (k + nz[n % _NOISE]) + 0.5) for i, n in zip(s.idx, s.ns, strict=True)]


def _rpm(s: _Span) -> list[int]:
    r, k, nz = s.segment.table.rpm, s.segment.scale, s.noise
    return [int(r[i] * k + nz[n % _NOISE]) for i, n in zip(s.idx, s.ns, strict=True)]


def _gear(s: _Span) -> list[int]:
    g = s.segment.table.gear
    return [g[i] for i in s.idx]


def _throttle(s: _Span) -> list[int]:
    t = s.segment.table.throttle
    return [t[i] for i in s.idx]


def _brake(share: Callable[[float], float]) -> Evaluator:
    def evaluate(s: _Span) -> list[int]:
        b, nz = s.segment.table.brake, s.noise
        gain = 1650.0 * min(1.0, s.segment.scale) ** 2 * share(s.segment.bias)
        return [int(b[i] * (gain + nz[n % _NOISE]) + 0.5) for i, n in zip(s.idx, s.ns, strict=True)]

    return evaluate


def _bias(s: _Span) -> list[int]:
    return [round(s.segment.bias * 10)] * len(s.ns)


def _signed(field: str, unit: float, power: float) -> Evaluator:
    """`field` of the lap table times the lap's speed scale to `power`, plus noise."""

    def evaluate(s: _Span) -> list[int]:
        values: list[float] = getattr(s.segment.table, field)
        k, nz, floor = unit * min(1.0, s.segment.scale) ** power, s.noise, math.floor
        return [floor(values[i] * k + nz[n % _NOISE]) for i, n in zip(s.idx, s.ns, strict=True)]

    return evaluate


def _table_ints(field: str) -> Evaluator:
    def evaluate(s: _Span) -> list[int]:
        values: list[int] = getattr(s.segment.table, field)
        return [values[i] for i in s.idx]

    return evaluate


def _drs(s: _Span) -> list[int]:
    if not s.segment.flying:
        return [0] * len(s.ns)
    d = s.segment.table.drs
    return [d[i] for i in s.idx]


def _ride(field: str) -> Evaluator:
    def evaluate(s: _Span) -> list[int]:
        h: list[float] = getattr(s.segment.table, field)
        nz = s.noise
        return [int(max(0.0, h[i] * 10 + nz[n % _NOISE])) for i, n in zip(s.idx, s.ns, strict=True)]

    return evaluate


def _warm(cold: float, hot: float, minutes: float, swing: float) -> Evaluator:
    def evaluate(s: _Span) -> list[int]:
        nz, phase, exp, sin = s.noise, s.plan.phase, math.exp, math.sin
        return [
            int(
                10
                * (
                    cold
                    + (hot - cold) * (1 - exp(-t / (60 * minutes)))
                    + swing * sin(t / 150 + phase)
                )
                + nz[n % _NOISE]
            )
            for t, n in zip(s.seconds(), s.ns, strict=True)
        ]

    return evaluate


def _fuel(s: _Span) -> list[int]:
    p = s.plan
    used = p.fuel_start - p.fuel_end
    until = p.on_track_until / TICKS_PER_SECOND
    return [round(100 * (p.fuel_start - used * min(1.0, t / until))) for t in s.seconds()]


def _tyre_pressure(corner: int) -> Evaluator:
    def evaluate(s: _Span) -> list[int]:
        cold, nz, exp = s.plan.tyres[corner], s.noise, math.exp
        return [
            int(1000 * (cold + 0.42 * (1 - exp(-t / 240))) + nz[n % _NOISE])
            for t, n in zip(s.seconds(), s.ns, strict=True)
        ]

    return evaluate


def _tyre_temperature(side: float, load: str) -> Evaluator:
    def evaluate(s: _Span) -> list[int]:
        table, nz, exp = s.segment.table, s.noise, math.exp
        lat, extra = table.glat, getattr(table, load)
        weight = 25.0 if load == "brake" else 0.02
        if table is _STOPPED:
            return [int(750 + nz[n % _NOISE]) for n in s.ns]
        return [
            int(
                10 * (58 + 34 * (1 - exp(-t / 200)) + 6.0 * max(0.0, side * lat[i]))
                + weight * extra[i]
                + nz[n % _NOISE]
            )
            for i, t, n in zip(s.idx, s.seconds(), s.ns, strict=True)
        ]

    return evaluate


def _inlet(s: _Span) -> list[int]:
    v, k, nz = s.segment.table.kph, 0.12 * s.segment.scale, s.noise
    base = 10 * (s.plan.ambient + 6.0)
    return [int(base - v[i] * k + nz[n % _NOISE]) for i, n in zip(s.idx, s.ns, strict=True)]


@dataclass(frozen=True)
class _Channel:
    evaluate: Evaluator
    digits: int  # native samples count units of 10**-digits
    sigma: float = 0.0  # noise, in those units (relative for speed and brake pressures)
    offset: float = 0.5  # added before truncating: rounds half up


CHANNELS: dict[str, _Channel] = {
    "vCar:Chassis": _Channel(_speed, 2, 0.1, 0.0),
    "nEngine:Chassis": _Channel(_rpm, 0, 25.0),
    "NGear:Chassis": _Channel(_gear, 0),
    "rThrottle:Chassis": _Channel(_throttle, 1),
    "pBrakeF:Chassis": _Channel(_brake(lambda b: 1.0), 1, 8.0, 0.0),
    "pBrakeR:Chassis": _Channel(_brake(lambda b: (100 - b) / b), 1, 6.0, 0.0),
    "rBrakeBias:Chassis": _Channel(_bias, 1),
    "aSteerWheel:Chassis": _Channel(_signed("steer", 10.0, 0.0), 1, 4.0),
    "gLat:Chassis": _Channel(_signed("glat", 1000.0, 2.0), 3, 40.0),
    "gLong:Chassis": _Channel(_signed("glong", 1000.0, 2.0), 3, 40.0),
    "sLap:Chassis": _Channel(_table_ints("dist"), 1),
    "NDRS:Chassis": _Channel(_drs, 0),
    "hRideF:Chassis": _Channel(_ride("ride_front"), 1, 3.0),
    "hRideR:Chassis": _Channel(_ride("ride_rear"), 1, 3.0),
    "TOilEngine:Chassis": _Channel(_warm(88.0, 116.0, 7, 2.5), 1, 0.5),
    "TWaterEngine:Chassis": _Channel(_warm(80.0, 104.0, 6, 2.0), 1, 0.5),
    "MFuel:Chassis": _Channel(_fuel, 2),
    "pTyreFL:Chassis": _Channel(_tyre_pressure(0), 3, 4.0),
    "pTyreFR:Chassis": _Channel(_tyre_pressure(1), 3, 4.0),
    "pTyreRL:Chassis": _Channel(_tyre_pressure(2), 3, 4.0),
    "pTyreRR:Chassis": _Channel(_tyre_pressure(3), 3, 4.0),
    "TTyreSurfFL:Chassis": _Channel(_tyre_temperature(-1.0, "brake"), 1, 5.0),
    "TTyreSurfRR:Chassis": _Channel(_tyre_temperature(1.0, "throttle"), 1, 5.0),
    "TAirInlet:Chassis": _Channel(_inlet, 1, 2.0),
}


def _natives(run: Run, parameter: str, step: int, n0: int, n1: int) -> list[int]:
    """Native samples `n0 <= n < n1` of one parameter (sample `n` at `start + n * step`)."""
    plan = _plan(run)
    channel = CHANNELS[parameter]
    noise = _noise(run.key, parameter, channel.sigma, channel.offset)
    values: list[int] = []
    for segment in plan.segments:
        a = max(n0, -((run.start - segment.start) // step))
        b = min(n1, -((run.start - segment.end) // step))
        if a >= b:
            continue
        ns = range(a, b)
        idx = _indices(run.start, segment, step, a, b)
        values += channel.evaluate(_Span(plan, segment, ns, idx, noise, step))
    return values


_INDEX_CACHE: OrderedDict[tuple[int, int, int, int, int], list[int]] = OrderedDict()
_INDEX_LOCK = threading.Lock()


def _indices(start: int, segment: _Segment, step: int, a: int, b: int) -> list[int]:
    """Lap table positions of native samples `a <= n < b`; parameters recorded at the same rate
    share them, so one request computes them once."""
    key = (start, segment.start, step, a, b)
    with _INDEX_LOCK:
        found = _INDEX_CACHE.get(key)
        if found is not None:
            _INDEX_CACHE.move_to_end(key)
            return found
    scale = _R / (segment.end - segment.start)
    c0 = (start - segment.start) * scale
    c1 = step * scale
    idx = [int(c0 + c1 * n) for n in range(a, b)]
    with _INDEX_LOCK:
        _INDEX_CACHE[key] = idx
        while len(_INDEX_CACHE) > 256:
            _INDEX_CACHE.popitem(last=False)
    return idx


def series(
    run: Run,
    parameter: str,
    native_hz: float,
    aggregation: str,
    grid: Grid,
    j0: int,
    j1: int,
) -> list[float]:
    """Output samples `j0 <= j < j1` of one parameter on `grid`, aggregated as asked."""
    if j1 <= j0:
        return []
    unit = 10.0 ** CHANNELS[parameter].digits
    step = round(TICKS_PER_SECOND / native_hz)
    n_end = -((run.start - run.end) // step)  # native samples before EndTime
    offsets = grid.offsets(j0, j1 + 1)
    if grid.num < step * grid.den:  # faster than recorded: hold the latest native sample
        held = [min(o // step, n_end - 1) for o in offsets[:-1]]
        base = held[0]
        natives = _natives(run, parameter, step, base, held[-1] + 1)
        return [natives[n - base] / unit for n in held]
    # Intervals hold at least one native sample, except one past the last native sample.
    bounds = [min(-(-o // step), n_end) for o in offsets]
    base = min(bounds[0], n_end - 1)
    natives = _natives(run, parameter, step, base, max(bounds[-1], base + 1))
    out: list[float] = []
    width = grid.num // step if grid.den == 1 and grid.num % step == 0 else 0
    done = 0
    if width and base == bounds[0]:
        # Regular intervals of `width` native samples: strided, C-speed aggregation.
        done = min(len(bounds) - 1, (len(natives)) // width)
        body = natives[: done * width]
        lanes = [body[o::width] for o in range(width)]
        if aggregation == "First" or width == 1:
            out = [x / unit for x in lanes[0]]
        elif aggregation == "Min":
            out = [x / unit for x in map(min, *lanes)]
        elif aggregation == "Max":
            out = [x / unit for x in map(max, *lanes)]
        else:
            total = width * unit
            sums = lanes[0]
            for lane in lanes[1:]:
                sums = list(map(operator.add, sums, lane))
            out = [x / total for x in sums]
    last = natives[-1] / unit
    for a, b in itertools.pairwise(bounds[done:]):
        if a >= b:
            out.append(last)
            continue
        chunk = natives[a - base : b - base]
        if aggregation == "First":
            out.append(chunk[0] / unit)
        elif aggregation == "Min":
            out.append(min(chunk) / unit)
        elif aggregation == "Max":
            out.append(max(chunk) / unit)
        else:
            out.append(sum(chunk) / (len(chunk) * unit))
    return out
