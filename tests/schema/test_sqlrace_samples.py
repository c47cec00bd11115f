"""SQL Race parameter samples through the gateway: columns, aggregations, windows, laps,
paging to a bound, hostile parameter ids and rates refused before any URL is built."""

from __future__ import annotations

from typing import Any

import pytest

from tests._servers import Gateway, Sandbox

RACE = "afb06f38-8708-4115-9328-f12647799f8a"  # the newest Season2024 race, 54 laps
SAMPLES = """query($parameters: [String!]!, $hz: Float!, $aggregation: SampleAggregation,
                  $from: String, $to: String, $lap: Int) {
  sqlRaceSession(connection: "Season2024", key: "RACE_KEY") {
    samples(parameters: $parameters, frequencyHz: $hz, aggregation: $aggregation,
            from: $from, to: $to, lap: $lap) {
      count time channels { parameter values } timeRanges { startTime endTime span }
    }
  }
}""".replace("RACE_KEY", RACE)
SPEED, GEAR = "vCar:Chassis", "NGear:Chassis"


def samples(gateway: Gateway, **variables: Any) -> Any:
    variables.setdefault("parameters", [SPEED, GEAR])
    variables.setdefault("hz", 1.0)
    result = gateway.query(SAMPLES, variables)
    assert "errors" not in result, result["errors"]
    return result["data"]["sqlRaceSession"]["samples"]


def test_samples_as_columns(gateway: Gateway, sandbox: Sandbox) -> None:
    series = samples(gateway)
    count = series["count"]
    assert count > 4000  # about 84 minutes at 1 Hz
    assert len(series["time"]) == count
    speed, gear = (c["values"] for c in series["channels"])
    assert [c["parameter"] for c in series["channels"]] == [SPEED, GEAR]
    assert len(speed) == len(gear) == count
    assert all(0 <= v <= 400 for v in speed)
    assert all(0 <= g <= 8 for g in gear)
    (whole,) = series["timeRanges"]
    assert whole["startTime"] <= series["time"][0]
    by_path = sandbox.stats("sqlrace")["by_path"]
    assert any(p.endswith("/data/count") for p in by_path)


def test_the_same_request_gives_the_same_samples(gateway: Gateway) -> None:
    assert samples(gateway, hz=2.0) == samples(gateway, hz=2.0)


def test_aggregations_relate_as_they_should(gateway: Gateway) -> None:
    by = {
        aggregation: samples(gateway, parameters=[SPEED], aggregation=aggregation)["channels"][0][
            "values"
        ]
        for aggregation in ("MIN", "MEAN", "MAX", "FIRST")
    }
    assert all(
        lo <= mid <= hi for lo, mid, hi in zip(by["MIN"], by["MEAN"], by["MAX"], strict=True)
    )
    assert all(
        lo <= first <= hi for lo, first, hi in zip(by["MIN"], by["FIRST"], by["MAX"], strict=True)
    )
    assert by["MIN"] != by["MAX"]


def test_windows_and_laps(gateway: Gateway) -> None:
    whole = samples(gateway, hz=1.0)
    start, end = whole["time"][100], whole["time"][160]
    window = samples(gateway, hz=1.0, **{"from": start, "to": end})
    assert window["time"] == whole["time"][100:160]  # from inclusive, to exclusive
    lap = samples(gateway, hz=1.0, lap=10)
    assert 60 <= lap["count"] <= 200
    assert set(lap["time"]) <= set(whole["time"])


def test_pages_are_followed_and_bounded(make_gateway: Any, sandbox: Sandbox) -> None:
    paged = make_gateway(sqlrace_samples_page_size=500)
    assert samples(paged, hz=1.0) == samples(make_gateway(), hz=1.0)
    data_requests = sum(
        n for p, n in sandbox.stats("sqlrace")["by_path"].items() if p.endswith("/1/data")
    )
    assert data_requests >= 1 + 4000 // 500  # pages of 500 for one, one page for the other
    bounded = make_gateway(sqlrace_max_samples=1000)
    result = bounded.query(SAMPLES, {"parameters": [SPEED], "hz": 10.0})
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "UPSTREAM_REJECTED"
    assert "narrow" in error["message"]


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"parameters": []}, "parameters"),
        ({"parameters": ["../../connections"]}, None),
        ({"parameters": ["vCar%2fChassis"]}, None),
        ({"parameters": ["vCar?Chassis"]}, None),
        ({"parameters": ["\x00"]}, "parameters"),
        ({"parameters": ["x" * 300]}, "parameters"),
        ({"hz": 0.0}, "frequencyHz"),
        ({"hz": -1.0}, "frequencyHz"),
        ({"hz": 1e9}, "cost"),
        ({"from": "10:34; DROP"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"lap": -1}, "lap"),
    ],
)
def test_hostile_or_absurd_input_is_coded(
    gateway: Gateway, sandbox: Sandbox, variables: dict[str, Any], field: str | None
) -> None:
    variables = {"parameters": [SPEED], "hz": 1.0, **variables}
    result = gateway.query(SAMPLES, variables)
    (error,) = result["errors"]
    code = error["extensions"]["code"]
    if field == "cost":
        assert code == "QUERY_TOO_COMPLEX"  # a billion samples a second is refused first
    elif field is not None:
        assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", field)
        assert not any("/parameters/" in p for p in sandbox.stats("sqlrace")["by_path"])
    else:
        # Encoded as one item of one segment: the server finds no such parameter.
        assert code == "NOT_FOUND"
        assert all("/parameters/" in p for p in sandbox.stats("sqlrace")["by_path"] if "data" in p)
