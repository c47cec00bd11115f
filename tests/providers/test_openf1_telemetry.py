"""Rows to columns: the fast path for clean answers and the careful one for odd rows."""

from __future__ import annotations

from typing import Any

from sessiongraph.providers.openf1_telemetry import CAR_DATA, LOCATION, columns, downsample


def sample(second: int, **values: Any) -> dict[str, Any]:
    return {"date": f"2025-12-07T13:00:{second:02d}+00:00", "driver_number": 1} | values


def test_clean_rows_become_one_list_per_channel() -> None:
    rows = [sample(s, x=s, y=-s, z=0) for s in range(3)]
    series = columns(rows, LOCATION)
    assert series.count == 3
    assert series.dates == [r["date"] for r in rows]
    assert series.channels == {"x": [0, 1, 2], "y": [0, -1, -2], "z": [0, 0, 0]}


def test_odd_rows_are_dropped_and_odd_values_nulled() -> None:
    rows: list[Any] = [
        sample(1, speed=100, rpm="11000", n_gear=7, throttle=99.5, brake=None, drs=True),
        "not an object",
        {"speed": 200},  # no date
        {"date": 20251207, "speed": 200},  # a date that is not text
        sample(2, speed=101),  # channels missing
    ]
    series = columns(rows, CAR_DATA)
    assert series.count == 2
    assert series.channels["speed"] == [100, 101]
    assert series.channels["rpm"] == [None, None]
    assert series.channels["throttle"] == [99.5, None]
    assert series.channels["drs"] == [None, None]


def test_rows_out_of_order_are_put_in_time_order() -> None:
    rows = [sample(3, x=3, y=0, z=0), sample(1, x=1, y=0, z=0), sample(2, x=2, y=0, z=0)]
    series = columns(rows, LOCATION)
    assert series.channels["x"] == [1, 2, 3]
    assert series.dates == sorted(series.dates)


def test_downsampling_keeps_the_first_sample_of_each_interval() -> None:
    rows = [sample(s, x=s, y=0, z=0) for s in (0, 1, 2, 5, 6, 9)]
    kept = downsample(columns(rows, LOCATION), 3.0)
    # Intervals [0,3) [3,6) [6,9) [9,12): the first sample in each, an empty one skipped.
    assert kept.channels["x"] == [0, 5, 6, 9]
