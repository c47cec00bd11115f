"""The rest of OpenF1 (positions, intervals, team radio, overtakes, standings) and per-driver
views with derived fields, each collection one upstream request for every driver."""

from __future__ import annotations

from typing import Any

from sessiongraph.providers.openf1 import IntervalRecord, to_record
from tests._servers import Gateway, Sandbox
from tests.schema.test_openf1 import data

RACE = 9839  # Abu Dhabi 2025


def race(gateway: Gateway, selection: str, key: int = RACE) -> Any:
    return data(gateway.query(f"{{ f1Session(key: {key}) {{ {selection} }} }}"))["f1Session"]


def test_every_new_endpoint_is_served(gateway: Gateway) -> None:
    session = race(
        gateway,
        """positions { driverNumber date position }
           intervals { driverNumber gapToLeader gapToLeaderText interval intervalText }
           teamRadio { driverNumber recordingUrl }
           championshipTeams { teamName positionStart positionCurrent pointsStart pointsCurrent }
           championshipDrivers { driverNumber }""",
    )
    assert len(session["positions"]) == 666
    assert len(session["intervals"]) == 12406
    assert len(session["teamRadio"]) == 22
    assert session["teamRadio"][0]["recordingUrl"].startswith("https://")
    assert len(session["championshipTeams"]) == 10
    assert session["championshipDrivers"] == []  # none in the data: OpenF1's 404 is empty
    leaders = [i for i in session["intervals"] if i["gapToLeader"] == 0]
    assert leaders
    overtakes = race(gateway, "overtakes { overtakingDriverNumber overtakenDriverNumber }", 9140)
    assert len(overtakes["overtakes"]) == 178


def test_lapped_gaps_are_typed_like_the_results() -> None:
    row = {
        "session_key": 1,
        "meeting_key": 2,
        "driver_number": 3,
        "gap_to_leader": "+1 LAP",
        "interval": 1.25,
    }
    record = to_record(IntervalRecord, row)
    assert record is not None
    assert (record.gap_to_leader, record.gap_to_leader_text, record.laps_behind) == (
        None,
        "+1 LAP",
        1,
    )
    assert (record.interval, record.interval_text, record.interval_laps_behind) == (
        1.25,
        None,
        None,
    )


PER_DRIVER = """drivers { driverNumber nameAcronym
  laps { lapNumber lapDuration }
  stints { stintNumber }
  pits { lapNumber }
  result { position }
  gridPosition { position }
  positions { position }
  intervals { gapToLeader }
  teamRadio { recordingUrl }
  fastestLap { lapNumber lapDuration }
  tyreStrategy { stintNumber compound lapStart lapEnd laps } }
laps { driverNumber lapNumber lapDuration }
stints { driverNumber stintNumber compound lapStart lapEnd }
fastestLap { driverNumber lapNumber lapDuration }"""


def test_per_driver_views_cost_one_request_per_collection(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    session = race(gateway, PER_DRIVER)
    drivers = session["drivers"]
    assert len(drivers) == 20
    by_path = sandbox.stats("openf1")["by_path"]
    for path in ("laps", "stints", "pit", "session_result", "position", "intervals", "team_radio"):
        assert by_path[f"/v1/{path}"] == 1, (path, by_path)
    assert by_path["/v1/starting_grid"] == 1
    # Each driver's rows are the session's rows of that driver.
    for driver in drivers:
        own = [lap for lap in session["laps"] if lap["driverNumber"] == driver["driverNumber"]]
        assert [lap["lapNumber"] for lap in driver["laps"]] == [lap["lapNumber"] for lap in own]
    assert sum(len(d["positions"]) for d in drivers) == 666
    assert {d["gridPosition"]["position"] for d in drivers} == set(range(1, 21))


def test_fastest_laps_and_tyre_strategies_are_derived_from_the_rows(gateway: Gateway) -> None:
    session = race(gateway, PER_DRIVER)
    timed = [lap for lap in session["laps"] if lap["lapDuration"] is not None]
    overall = min(timed, key=lambda lap: (lap["lapDuration"], lap["lapNumber"]))
    assert session["fastestLap"] == {
        "driverNumber": overall["driverNumber"],
        "lapNumber": overall["lapNumber"],
        "lapDuration": overall["lapDuration"],
    }
    for driver in session["drivers"]:
        laps = [lap for lap in driver["laps"] if lap["lapDuration"] is not None]
        best = min(laps, key=lambda lap: (lap["lapDuration"], lap["lapNumber"]))
        assert driver["fastestLap"] == {
            "lapNumber": best["lapNumber"],
            "lapDuration": best["lapDuration"],
        }
        strategy = driver["tyreStrategy"]
        assert [s["stintNumber"] for s in strategy] == sorted(s["stintNumber"] for s in strategy)
        for stint in strategy:
            assert stint["laps"] == stint["lapEnd"] - stint["lapStart"] + 1
    verstappen = next(d for d in session["drivers"] if d["driverNumber"] == 1)
    assert verstappen["result"] == {"position": 1}


def test_a_driver_without_rows_gets_empty_lists_and_nulls(gateway: Gateway) -> None:
    session = race(gateway, "drivers { fastestLap { lapNumber } tyreStrategy { laps } }", 9140)
    assert all(d["fastestLap"] is None for d in session["drivers"])  # no laps in the data
