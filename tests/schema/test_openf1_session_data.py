"""OpenF1's per-session data on `F1Session`: real sandbox values, union-typed results, batching."""

from __future__ import annotations

from typing import Any

from tests._servers import Gateway, Sandbox
from tests.schema.test_openf1 import data

ABU_DHABI_2025 = """{ meeting(key: 1276) { sessions { sessionKey
    drivers { fullName } results { position } } } }"""


def session(gateway: Gateway, key: int, selection: str) -> Any:
    return data(gateway.query(f"{{ f1Session(key: {key}) {{ {selection} }} }}"))["f1Session"]


def test_a_meetings_drivers_and_results_cost_one_request_each(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    sessions = data(gateway.query(ABU_DHABI_2025))["meeting"]["sessions"]
    assert [s["sessionKey"] for s in sessions] == [9832, 9833, 9834, 9835, 9839]
    assert all(len(s["drivers"]) == 20 and len(s["results"]) == 20 for s in sessions)
    assert sandbox.stats("openf1")["by_path"] == {
        "/v1/meetings": 1,
        "/v1/sessions": 1,
        "/v1/drivers": 1,
        "/v1/session_result": 1,
    }


def test_without_batching_each_session_costs_a_request(make_gateway: Any, sandbox: Sandbox) -> None:
    data(make_gateway(dataloader_batching=False).query(ABU_DHABI_2025))
    by_path = sandbox.stats("openf1")["by_path"]
    assert by_path["/v1/drivers"] == by_path["/v1/session_result"] == 5


def test_abu_dhabi_2025_race_winner_is_verstappen(gateway: Gateway) -> None:
    race = session(
        gateway,
        9839,
        """results { position driverNumber numberOfLaps points dnf duration gapToLeader
                     durationByPhase gapToLeaderText lapsBehind }
           drivers { driverNumber fullName nameAcronym teamColour }""",
    )
    winner, second = race["results"][:2]
    assert winner == {
        "position": 1,
        "driverNumber": 1,
        "numberOfLaps": 58,
        "points": 25.0,
        "dnf": False,
        "duration": 5167.469,
        "gapToLeader": 0.0,
        "durationByPhase": None,
        "gapToLeaderText": None,
        "lapsBehind": None,
    }
    assert (second["driverNumber"], second["gapToLeader"]) == (81, 12.594)
    assert race["drivers"][0] == {
        "driverNumber": 1,
        "fullName": "Max VERSTAPPEN",
        "nameAcronym": "VER",
        "teamColour": "4781D7",
    }


def test_qualifying_times_are_per_phase_arrays(gateway: Gateway) -> None:
    selection = "results { driverNumber duration durationByPhase gapToLeader gapToLeaderByPhase }"
    pole = session(gateway, 9835, selection)["results"][0]
    assert pole == {
        "driverNumber": 1,
        "duration": None,
        "durationByPhase": [82.877, 82.752, 82.207],
        "gapToLeader": None,
        "gapToLeaderByPhase": [0.272, 0.022, 0.0],
    }
    # Singapore 2023: #22 was fastest in Q1 and ran no later phase.
    (tsunoda,) = [
        r for r in session(gateway, 9161, selection)["results"] if r["driverNumber"] == 22
    ]
    assert tsunoda["durationByPhase"] == [91.991, None, None]
    assert tsunoda["gapToLeaderByPhase"] == [0.0, None, None]


def test_lapped_gaps_keep_their_text_and_count(gateway: Gateway) -> None:
    results = session(gateway, 9472, "results { position gapToLeader gapToLeaderText lapsBehind }")[
        "results"
    ]
    assert results[10] == {
        "position": 11,
        "gapToLeader": None,
        "gapToLeaderText": "+1 LAP",
        "lapsBehind": 1,
    }
    assert results[19]["gapToLeaderText"] == "+2 LAPS"
    assert results[19]["lapsBehind"] == 2


def test_the_grid_lives_under_qualifying_and_is_found_from_the_race(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    grid = "{ position driverNumber lapDuration sessionKey }"
    payload = data(
        gateway.query(
            f"""{{ qualifying: f1Session(key: 9835) {{ startingGrid {grid} }}
                   race: f1Session(key: 9839) {{ startingGrid {grid} grid {grid} }}
                   fp1: f1Session(key: 9832) {{ grid {grid} }} }}"""
        )
    )
    expected = payload["qualifying"]["startingGrid"]
    assert expected[0] == {
        "position": 1,
        "driverNumber": 1,
        "lapDuration": 82.207,
        "sessionKey": 9835,
    }
    assert len(expected) == 20
    assert payload["race"] == {"startingGrid": [], "grid": expected}
    assert payload["fp1"] == {"grid": []}
    # The race's qualifying session and both grids come from one request each.
    assert sandbox.stats("openf1")["by_path"]["/v1/starting_grid"] == 1


def test_a_sprint_starts_from_its_sprint_shootout(gateway: Gateway) -> None:
    sprint = session(gateway, 9140, "grid { sessionKey position }")
    assert {row["sessionKey"] for row in sprint["grid"]} == {9286}
    assert [row["position"] for row in sprint["grid"]] == list(range(1, 21))


def test_stints_pits_race_control_and_weather(gateway: Gateway) -> None:
    race = session(
        gateway,
        9839,
        """stints { driverNumber stintNumber lapStart lapEnd compound tyreAgeAtStart }
           pits { driverNumber lapNumber date laneDuration pitDuration stopDuration }
           raceControl { date driverNumber lapNumber category message }
           weather { date airTemperature trackTemperature humidity rainfall windDirection }""",
    )
    assert [s for s in race["stints"] if s["driverNumber"] == 1] == [
        {"driverNumber": 1, "stintNumber": 1, "lapStart": 1, "lapEnd": 23,
         "compound": "MEDIUM", "tyreAgeAtStart": 0},
        {"driverNumber": 1, "stintNumber": 2, "lapStart": 24, "lapEnd": 58,
         "compound": "HARD", "tyreAgeAtStart": 0},
    ]  # fmt: skip
    # Pre-2026 rows have only pit_duration, which laneDuration takes over.
    assert [p for p in race["pits"] if p["driverNumber"] == 1] == [
        {"driverNumber": 1, "lapNumber": 23, "date": "2025-12-07T13:38:12.038000+00:00",
         "laneDuration": 21.7, "pitDuration": 21.7, "stopDuration": None},
    ]  # fmt: skip
    assert len(race["raceControl"]) == 107
    assert race["raceControl"][-1]["message"].startswith("FIA STEWARDS: 5 SECOND TIME PENALTY")
    assert race["raceControl"][-1]["driverNumber"] is None
    assert len(race["weather"]) == 153
    assert race["weather"][0] == {
        "date": "2025-12-07T12:06:07.170000+00:00",
        "airTemperature": 27.4,
        "trackTemperature": 34.6,
        "humidity": 55.0,
        "rainfall": 0,
        "windDirection": 67,
    }


def test_laps_of_one_driver(gateway: Gateway, sandbox: Sandbox) -> None:
    race = session(
        gateway,
        9839,
        """ver: laps(driverNumber: 1) { lapNumber lapDuration durationSector2 dateStart
                                        segmentsSector1 }
           all: laps { driverNumber }""",
    )
    assert len(race["ver"]) == 58
    # Lap 1 is partly empty in this (Dec 2025) snapshot.
    assert race["ver"][0] == {
        "lapNumber": 1,
        "lapDuration": None,
        "durationSector2": 38.489,
        "dateStart": None,
        "segmentsSector1": [2048, 2049, 2051, 2051, 2051],
    }
    assert race["ver"][1]["lapDuration"] == 89.117
    assert len(race["all"]) == 1156
    # One request per distinct driver filter, both in flight together.
    assert sandbox.stats("openf1")["by_path"]["/v1/laps"] == 2


def test_sessions_without_data_have_empty_lists(gateway: Gateway) -> None:
    # No laps for 9140 and no result for 9135 exist upstream: both answer 404 no-results.
    assert session(gateway, 9140, "laps { lapNumber }") == {"laps": []}
    assert session(gateway, 9135, "results { position }") == {"results": []}


def test_a_failing_collection_nulls_only_its_field(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(retry_attempts=0)
    sandbox.faults("openf1", error_rate=1.0, error_status=503, path_prefix="/v1/laps")
    result = gateway.query(
        "{ f1Session(key: 9839) { sessionKey drivers { nameAcronym } laps { lapNumber } } }"
    )
    race = result["data"]["f1Session"]
    assert race["sessionKey"] == 9839
    assert race["laps"] is None
    assert race["drivers"][0] == {"nameAcronym": "VER"}
    (error,) = result["errors"]
    assert error["path"] == ["f1Session", "laps"]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert error["extensions"]["upstream"] == "openf1"
    assert error["extensions"]["status"] == 503
