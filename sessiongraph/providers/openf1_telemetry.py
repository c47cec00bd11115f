"""OpenF1 car telemetry (`/v1/car_data`) and positions on track (`/v1/location`) as columns:
one list per channel, never one object per sample."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from ._values import typed_or_json

__all__ = [
    "CAR_DATA",
    "LOCATION",
    "SAMPLES_PER_SECOND",
    "TelemetryKind",
    "TelemetrySeries",
    "columns",
    "downsample",
]

# OpenF1 samples each car about 3.7 times a second (reference §4).
SAMPLES_PER_SECOND = 3.7


@dataclass(frozen=True)
class TelemetryKind:
    collection: str
    channels: tuple[str, ...]
    # One struct per sample with only the fields we keep: decoding into it skips the rest of
    # each row and costs a quarter of building dicts.
    row: type[msgspec.Struct] = field(init=False, repr=False, compare=False)
    # An answer's rows as structs; any other JSON (an odd row, an error body) as orjson
    # decodes it, and a body that is not JSON raises `orjson.JSONDecodeError`.
    decode: Callable[[bytes], Any] = field(init=False, repr=False, compare=False)
    # Structs to columns, `date` first then `channels` in order.
    transpose: Callable[[Sequence[Any]], tuple[list[Any], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [("date", str)]
        fields += [(name, _NUMBER, None) for name in self.channels]
        row = msgspec.defstruct(f"{self.collection}_row", fields, gc=False)
        object.__setattr__(self, "row", row)
        decoder = msgspec.json.Decoder(list[row])  # type: ignore[valid-type]
        object.__setattr__(self, "decode", typed_or_json(decoder))
        names = ("date", *self.channels)
        if not all(map(str.isidentifier, names)):
            raise ValueError(f"channels must be identifiers: {names}")
        # A comprehension naming its attribute reads it twice as fast as `attrgetter` does
        # (Python's specialised slot reads), so one is compiled per kind, as dataclasses do.
        source = "lambda rows: (" + ", ".join(f"[r.{n} for r in rows]" for n in names) + ",)"
        object.__setattr__(self, "transpose", eval(source))  # noqa: S307


_NUMBER = int | float | None

CAR_DATA = TelemetryKind("car_data", ("speed", "rpm", "n_gear", "throttle", "brake", "drs"))
LOCATION = TelemetryKind("location", ("x", "y", "z"))


@dataclass(frozen=True, slots=True)
class TelemetrySeries:
    """Samples in time order: `dates` as OpenF1 wrote them, one column per channel."""

    dates: list[str]
    channels: dict[str, list[Any]]

    @property
    def count(self) -> int:
        return len(self.dates)


_NUMERIC = frozenset({int, float, type(None)})
_TEXT = frozenset({str})
_DATE = operator.itemgetter("date")
_DATE_ATTRIBUTE = operator.attrgetter("date")


def _column(kept: list[dict[str, Any]], name: str) -> list[Any]:
    try:
        values = list(map(operator.itemgetter(name), kept))
    except KeyError:
        values = [r.get(name) for r in kept]
    # One pass of type checks, values untouched unless one is odd (a string, a bool).
    if not _NUMERIC.issuperset(map(type, values)):
        values = [v if type(v) in _NUMERIC else None for v in values]
    return values


def columns(rows: Sequence[Any], kind: TelemetryKind) -> TelemetrySeries:
    """Rows (in time order upstream) to columns; a missing or odd value is null."""
    if rows and type(rows[0]) is kind.row:
        return _struct_columns(list(rows), kind)
    kept = list(rows)
    try:
        dates = list(map(_DATE, kept))
        usable = _TEXT.issuperset(map(type, dates))
    except (KeyError, TypeError):
        usable = False
    if not usable:
        # The slow path only for an answer with a row that is not an object with a date.
        kept = [r for r in kept if type(r) is dict and type(r.get("date")) is str]
        dates = list(map(_DATE, kept))
    if not _in_order(dates):
        kept.sort(key=_DATE)
        dates = list(map(_DATE, kept))
    return TelemetrySeries(dates, {name: _column(kept, name) for name in kind.channels})


def _struct_columns(kept: list[Any], kind: TelemetryKind) -> TelemetrySeries:
    # Decoded against the struct, so every date is text and every value a number or null.
    dates, *values = kind.transpose(kept)
    if not _in_order(dates):
        kept.sort(key=_DATE_ATTRIBUTE)
        dates, *values = kind.transpose(kept)
    return TelemetrySeries(dates, dict(zip(kind.channels, values, strict=True)))


def _in_order(dates: list[str]) -> bool:
    # One date format upstream, so text order is time order. Sorting a sorted copy is one
    # pass in C: twice as fast as comparing neighbours with `map`.
    return dates == sorted(dates)


def downsample(series: TelemetrySeries, every_seconds: float) -> TelemetrySeries:
    """The first sample of each `every_seconds` interval, counted from the first sample:
    values are kept as measured, never averaged (a gear or DRS code has no mean)."""
    kept: list[int] = []
    next_due: float | None = None
    for index, text in enumerate(series.dates):
        moment = _seconds(text)
        if moment is None:
            continue
        if next_due is None or moment >= next_due:
            kept.append(index)
            base = moment if next_due is None else next_due
            # Skip whole intervals that had no sample, so buckets stay aligned.
            next_due = base + every_seconds * (1 + int((moment - base) // every_seconds))
    return TelemetrySeries(
        [series.dates[i] for i in kept],
        {name: [values[i] for i in kept] for name, values in series.channels.items()},
    )


def _seconds(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
