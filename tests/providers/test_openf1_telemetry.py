"""Rows to columns: the fast path for clean answers and the careful one for odd rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from sessiongraph.providers.openf1_telemetry import (
    CAR_DATA,
    LOCATION,
    TelemetryKind,
    TelemetrySeries,
    columns,
    downsample,
)

Columns = Callable[[list[Any], TelemetryKind], TelemetrySeries]


def decoded(rows: list[Any], kind: TelemetryKind) -> TelemetrySeries:
    """As the provider does it: the answer's bytes through the kind's decoder."""
    return columns(kind.decode(orjson.dumps(rows)), kind)


# Each behaviour holds for rows decoded from an answer (structs when every row fits, else
# plain JSON) and for rows already decoded as dicts.
both = pytest.mark.parametrize("to_columns", [decoded, columns], ids=["bytes", "dicts"])


def sample(second: int, **values: Any) -> dict[str, Any]:
    return {"date": f"2025-12-07T13:00:{second:02d}+00:00", "driver_number": 1} | values


@both
def test_clean_rows_become_one_list_per_channel(to_columns: Columns) -> None:
    rows = [sample(s, x=s, y=-s, z=0) for s in range(3)]
    series = to_columns(rows, LOCATION)
    assert series.count == 3
    assert series.dates == [r["date"] for r in rows]
    assert series.channels == {"x": [0, 1, 2], "y": [0, -1, -2], "z": [0, 0, 0]}


@both
def test_odd_rows_are_dropped_and_odd_values_nulled(to_columns: Columns) -> None:
    rows: list[Any] = [
        sample(1, speed=100, rpm="11000", n_gear=7, throttle=99.5, brake=None, drs=True),
        "not an object",
        {"speed": 200},  # no date
        {"date": 20251207, "speed": 200},  # a date that is not text
        sample(2, speed=101),  # channels missing
    ]
    series = to_columns(rows, CAR_DATA)
    assert series.count == 2
    assert series.channels["speed"] == [100, 101]
    assert series.channels["rpm"] == [None, None]
    assert series.channels["throttle"] == [99.5, None]
    assert series.channels["drs"] == [None, None]


@both
def test_rows_out_of_order_are_put_in_time_order(to_columns: Columns) -> None:
    rows = [sample(3, x=3, y=0, z=0), sample(1, x=1, y=0, z=0), sample(2, x=2, y=0, z=0)]
    series = to_columns(rows, LOCATION)
    assert series.channels["x"] == [1, 2, 3]
    assert series.dates == sorted(series.dates)


@both
def test_downsampling_keeps_the_first_sample_of_each_interval(to_columns: Columns) -> None:
    rows = [sample(s, x=s, y=0, z=0) for s in (0, 1, 2, 5, 6, 9)]
    kept = downsample(to_columns(rows, LOCATION), 3.0)
    # Intervals [0,3) [3,6) [6,9) [9,12): the first sample in each, an empty one skipped.
    assert kept.channels["x"] == [0, 5, 6, 9]


def test_clean_answers_decode_to_structs_and_the_rest_as_json() -> None:
    clean = orjson.dumps([sample(1, speed=300, rpm=12000.5, drs=None, extra={"a": 1})])
    (row,) = CAR_DATA.decode(clean)
    assert type(row) is CAR_DATA.row
    assert (row.speed, row.rpm, row.drs, row.n_gear) == (300, 12000.5, None, None)
    # A value of another type, an error body: decoded as they are, for the careful path.
    assert CAR_DATA.decode(b'[{"date": "x", "speed": "fast"}]') == [{"date": "x", "speed": "fast"}]
    assert CAR_DATA.decode(b'{"detail": "No results found."}') == {"detail": "No results found."}
    with pytest.raises(orjson.JSONDecodeError):
        CAR_DATA.decode(b'[{"date": "x",')
