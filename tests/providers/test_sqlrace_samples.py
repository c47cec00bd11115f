"""Sample pages to columns: the struct path for clean pages, the careful one for odd samples,
and the same columns from both."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sessiongraph.providers.sqlrace_samples import (
    Aggregation,
    SampleQuery,
    SampleRow,
    _joined,
    decode_page,
    to_series,
)

QUERY = SampleQuery("Season2024", "s", ("vCar:Chassis", "nEngine:Chassis"), 10, Aggregation.MEAN)


def page(*rows: dict[str, Any]) -> Any:
    return decode_page(orjson.dumps(list(rows)))


def test_clean_pages_decode_to_structs_and_become_columns() -> None:
    rows = page(
        {"Time": "10:00:00.1", "Values": {"vCar:Chassis": 100, "nEngine:Chassis": 11000.5}},
        {"Time": "10:00:00.2", "Values": {"vCar:Chassis": None, "nEngine:Chassis": 11010}},
    )
    assert all(type(r) is SampleRow for r in rows)
    series = to_series(rows, QUERY)
    assert series.times == ["10:00:00.1", "10:00:00.2"]
    assert series.channels == [
        ("vCar:Chassis", [100.0, None]),
        ("nEngine:Chassis", [11000.5, 11010.0]),
    ]


def test_values_keyed_with_their_aggregation_or_missing() -> None:
    rows = page(
        {"Time": "1", "Values": {"vCar:Chassis;Mean": 1.5}},
        {"Time": "2", "Values": {"vCar:Chassis;Mean": 2.5, "nEngine:Chassis": 3}},
    )
    series = to_series(rows, QUERY)
    assert series.channels == [("vCar:Chassis", [1.5, 2.5]), ("nEngine:Chassis", [None, 3.0])]


def test_an_odd_page_joins_the_clean_ones_and_odd_values_are_null() -> None:
    clean = page({"Time": "1", "Values": {"vCar:Chassis": 1}})
    odd = page(
        {"Time": "2", "Values": {"vCar:Chassis": True, "nEngine:Chassis": "x"}},
        {"Values": {"vCar:Chassis": 5}},  # no time: dropped
        "not a sample",
    )
    assert type(odd) is list
    assert type(odd[0]) is dict
    series = _joined([to_series(clean, QUERY), to_series(odd, QUERY)], QUERY)
    assert series.times == ["1", "2"]
    assert series.channels == [("vCar:Chassis", [1.0, None]), ("nEngine:Chassis", [None, None])]


def test_bodies_that_are_not_sample_pages() -> None:
    assert decode_page(b'{"Message": "no"}') == {"Message": "no"}
    with pytest.raises(orjson.JSONDecodeError):
        decode_page(b'[{"Time": ')
