"""Live recordings of the SQL Race emulator (`sqlrace.py`): the control body and the clock.

A recording is a run the emulator lays out in full when it starts (out lap, flying laps, in lap,
a few seconds in the garage, as every stored run) and reveals as its clock passes: the clock is
session time, ticks since midnight of the recording day, running `speed` times real time from
`TimeOfRecording`. Nothing runs in the background: each request reads the clock. This module
knows nothing of sessions; `sqlrace.py` builds them and asks the clock what is visible.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LIVE_RECORDING_STATES",
    "MAX_LAPS",
    "MAX_LAP_SECONDS",
    "MAX_SPEED",
    "MIN_LAP_SECONDS",
    "Clock",
    "RecordRequest",
]

TICKS_PER_SECOND = 10_000_000
# The states a recording can be in while its clock runs: both live members of SessionState.
LIVE_RECORDING_STATES = ("Live", "LiveNotInServer")
MAX_SPEED = 100_000.0
MAX_LAPS = 200
# The sample generator fits a track to the lap time; outside this range its lap distance would
# leave the 0-7100 m that `sLap:Chassis` lists.
MIN_LAP_SECONDS = 50.0
MAX_LAP_SECONDS = 120.0
MAX_TEXT = 60


@dataclass(frozen=True)
class RecordRequest:
    """A validated `POST /__sandbox/sqlrace/record` body."""

    connection: str
    speed: float
    laps: int  # flying laps, between the out lap and the in lap
    lap_seconds: float
    circuit: str
    driver: str
    car: str | None
    name: str | None
    state: str

    @classmethod
    def from_json(
        cls,
        payload: Any,
        connections: Collection[str],
        circuits: Mapping[str, float],
    ) -> RecordRequest:
        """Raises ValueError with a message naming the offending field."""
        if not isinstance(payload, dict):
            raise ValueError("the body must be a JSON object")
        known = {"connection", "speed", "laps", "lap_seconds", "circuit", "driver", "car"}
        known |= {"name", "state"}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ValueError(
                f"unknown keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        if "connection" not in payload:
            raise ValueError("connection is required: the Identifier of a connection")
        connection = payload["connection"]
        if not isinstance(connection, str) or connection not in connections:
            raise ValueError(
                f"connection must be one of {', '.join(map(repr, connections))}, not {connection!r}"
            )
        circuit = payload.get("circuit", "Silverstone")
        if not isinstance(circuit, str) or circuit not in circuits:
            raise ValueError(
                f"circuit must be one of {', '.join(map(repr, sorted(circuits)))}, not {circuit!r}"
            )
        speed = _number(payload, "speed", 1.0)
        if not 0 < speed <= MAX_SPEED:
            raise ValueError(f"speed must be above 0 and at most {MAX_SPEED:g}, not {speed:g}")
        laps = payload.get("laps", 10)
        if isinstance(laps, bool) or not isinstance(laps, int) or not 0 <= laps <= MAX_LAPS:
            raise ValueError(f"laps must be a whole number from 0 to {MAX_LAPS}, not {laps!r}")
        lap_seconds = _number(payload, "lap_seconds", circuits[circuit])
        if not MIN_LAP_SECONDS <= lap_seconds <= MAX_LAP_SECONDS:
            raise ValueError(
                f"lap_seconds must lie in [{MIN_LAP_SECONDS:g}, {MAX_LAP_SECONDS:g}], "
                f"not {lap_seconds:g}"
            )
        state = payload.get("state", "Live")
        if state not in LIVE_RECORDING_STATES:
            raise ValueError(
                f"state must be one of {', '.join(map(repr, LIVE_RECORDING_STATES))}, not {state!r}"
            )
        return cls(
            connection=connection,
            speed=speed,
            laps=laps,
            lap_seconds=round(lap_seconds, 1),  # one fitted track per tenth of a second
            circuit=circuit,
            driver=_text(payload, "driver") or "KHA",
            car=_text(payload, "car"),
            name=_text(payload, "name"),
            state=state,
        )


def _number(payload: dict[str, Any], name: str, default: float) -> float:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return float(value)


def _text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise ValueError(f"{name} must be a non-empty string of at most {MAX_TEXT} characters")
    return value.strip()


@dataclass
class Clock:
    """Session time of one recording as a function of real (monotonic) time."""

    speed: float
    started: float  # monotonic seconds when the recording began
    origin: int  # session ticks at `started`: TimeOfRecording's time of day
    end: int  # where the planned run ends, session ticks
    stopped_at: int | None = None  # session ticks where it was stopped early

    def at(self, now: float) -> int:
        """Session ticks at real time `now`, never past the end (or the stop)."""
        if self.stopped_at is not None:
            return self.stopped_at
        elapsed = max(0.0, now - self.started)
        return min(self.end, self.origin + math.floor(elapsed * self.speed * TICKS_PER_SECOND))

    def running(self, now: float) -> bool:
        return self.stopped_at is None and self.at(now) < self.end

    def stop(self, now: float) -> None:
        """Ends the recording where its clock is; a finished or stopped one stays as it was."""
        if self.running(now):
            self.stopped_at = self.at(now)

    @property
    def stopped(self) -> bool:
        """Ended by a stop before the run was complete."""
        return self.stopped_at is not None and self.stopped_at < self.end

    def real_seconds_left(self, now: float) -> float:
        if not self.running(now):
            return 0.0
        return (self.end - self.at(now)) / TICKS_PER_SECOND / self.speed
