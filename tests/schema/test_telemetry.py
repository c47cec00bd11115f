"""OpenF1 car data and location as columnar series: windows, downsampling, per-driver views,
bad input refused before any request."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests._servers import Gateway, Sandbox
from tests.schema.test_openf1 import data

RACE = 9839
CAR_DATA = "count date speed rpm nGear throttle brake drs"


def car_data(gateway: Gateway, arguments: str, fields: str = CAR_DATA) -> Any:
    query = f"{{ f1Session(key: {RACE}) {{ carData({arguments}) {{ {fields} }} }} }}"
    return data(gateway.query(query))["f1Session"]["carData"]


def test_a_drivers_whole_race_as_columns(gateway: Gateway, sandbox: Sandbox) -> None:
    series = car_data(gateway, "driverNumber: 1")
    count = series["count"]
    assert count > 15_000
    for name in ("date", "speed", "rpm", "nGear", "throttle", "brake", "drs"):
        assert len(series[name]) == count, name
    assert series["date"] == sorted(series["date"])
    assert all(0 <= v <= 400 for v in series["speed"] if v is not None)
    assert sandbox.stats("openf1")["by_path"]["/v1/car_data"] == 1


def test_the_window_is_from_inclusive_to_exclusive(gateway: Gateway) -> None:
    dates = car_data(gateway, "driverNumber: 1", "date")["date"]
    start, end = dates[100], dates[200]
    window = car_data(gateway, f'driverNumber: 1, from: "{start}", to: "{end}"', "count date")
    assert window["count"] == 100
    assert window["date"][0] == start
    assert end not in window["date"]


def test_an_empty_window_and_a_driver_without_data(gateway: Gateway) -> None:
    before = car_data(
        gateway, 'driverNumber: 1, from: "2020-01-01T00:00:00Z", to: "2020-01-02T00:00:00Z"'
    )
    assert before["count"] == 0
    assert before["speed"] == []
    assert car_data(gateway, "driverNumber: 98", "count")["count"] == 0


def test_downsampling_keeps_the_first_sample_of_each_interval(gateway: Gateway) -> None:
    full = car_data(gateway, "driverNumber: 44", "date speed")
    sampled = car_data(gateway, "driverNumber: 44, everySeconds: 10", "count date speed")
    # The first sample of each 10 s interval counted from the first sample, nothing else.
    first = datetime.fromisoformat(full["date"][0])
    expected, seen = [], set()
    for date in full["date"]:
        bucket = int((datetime.fromisoformat(date) - first).total_seconds() // 10)
        if bucket not in seen:
            seen.add(bucket)
            expected.append(date)
    assert sampled["date"] == expected
    assert sampled["count"] == len(expected) < len(full["date"]) / 20
    # Kept as measured: each kept speed is the full series' speed at that instant.
    speed_at = dict(zip(full["date"], full["speed"], strict=True))
    assert all(speed_at[d] == v for d, v in zip(sampled["date"], sampled["speed"], strict=True))


def test_location_and_per_driver_views(make_gateway: Any, sandbox: Sandbox) -> None:
    # The emulator generates 40 blocks of synthetic samples for this on a cold start.
    gateway = make_gateway(upstream_timeout_seconds=120)
    query = f"""{{ f1Session(key: {RACE}) {{ drivers {{ driverNumber
        carData(everySeconds: 60) {{ count speed }}
        carLocation(everySeconds: 60) {{ count x y z }} }} }} }}"""
    drivers = data(gateway.query(query))["f1Session"]["drivers"]
    assert len(drivers) == 20
    assert all(d["carData"]["count"] > 0 and d["carLocation"]["count"] > 0 for d in drivers)
    # One request per driver and window for each kind.
    by_path = sandbox.stats("openf1")["by_path"]
    assert by_path["/v1/car_data"] == by_path["/v1/location"] == 20


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ('driverNumber: 1, from: "2025-12-07T14:00:00Z", to: "2025-12-07T13:00:00Z"', "to"),
        ('driverNumber: 1, from: "2025-12-07T14:00:00Z", to: "2025-12-07T14:00:00Z"', "to"),
        ("driverNumber: 1, everySeconds: 0", "everySeconds"),
        ("driverNumber: 1, everySeconds: -5", "everySeconds"),
        ("driverNumber: 1, everySeconds: 1e9", "everySeconds"),
        ("driverNumber: 0", "driverNumber"),
        ("driverNumber: 1000", "driverNumber"),
    ],
)
def test_bad_input_is_refused_before_any_request(
    gateway: Gateway, sandbox: Sandbox, arguments: str, field: str
) -> None:
    result = gateway.query(f"{{ f1Session(key: {RACE}) {{ carData({arguments}) {{ count }} }} }}")
    (error,) = result["errors"]
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", field)
    assert "/v1/car_data" not in sandbox.stats("openf1")["by_path"]


def test_the_session_level_field_needs_a_driver(gateway: Gateway, sandbox: Sandbox) -> None:
    result = gateway.query(f"{{ f1Session(key: {RACE}) {{ carData {{ count }} }} }}")
    assert result["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "driverNumber" in result["errors"][0]["message"]
    assert sandbox.requests("openf1") == 0
