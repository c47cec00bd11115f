"""The SQL Race emulator's live recordings over real HTTP: sessions that grow with a clock."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from sessiongraph.sandbox.sqlrace import STATE_CODES
from tests._servers import Sandbox
from tests.sandbox.test_sqlrace import DETAIL_NAMES, SEASON, SIM, Api, key_of, ticks

T = TypeVar("T")
RECORD = "/__sandbox/sqlrace/record"
SPEED = "vCar:Chassis,NGear:Chassis"
TENTH = 1_000_000  # ticks between samples at 10 Hz


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.root("sqlrace"), timeout=10) as client:
        yield client


@pytest.fixture
def api(http: httpx.Client) -> Api:
    return Api(http)


def record(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post(RECORD, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def wait_for(probe: Callable[[], T | None], timeout: float = 15) -> T:
    """Polls `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, "the recording clock did not get there"
        time.sleep(0.02)


def live_sessions(api: Api, connection: str = SEASON) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.json(f"/api/connections/{connection}/sessions/live")
    return found


def listed(api: Api, connection: str, key: str) -> dict[str, Any] | None:
    sessions = api.json(f"/api/connections/{connection}/sessions", pageSize=500)
    return next((s for s in sessions if key_of(s) == key), None)


def timespan(tick: int) -> str:
    """Ticks since midnight as the API writes them: `[d.]hh:mm:ss.fffffff`."""
    days, rest = divmod(tick, 86_400 * 10_000_000)
    seconds, fraction = divmod(rest, 10_000_000)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:07d}"
    return f"{days}.{text}" if days else text


def base_of(key: str, connection: str = SEASON) -> str:
    return f"/api/connections/{connection}/sessions/{key}"


def test_a_recording_appears_in_sessions_live_and_sessions(api: Api, http: httpx.Client) -> None:
    assert live_sessions(api) == []
    started = record(http, connection=SEASON, speed=1, laps=12, lap_seconds=90)
    assert started["state"] == "Live"
    assert started["recording"] is True
    assert started["stopped"] is False
    assert (started["laps"], started["lap_seconds"], started["planned_laps_count"]) == (12, 90, 14)
    assert started["laps_count"] == 0
    assert started["real_seconds_left"] > 1000

    live = live_sessions(api)
    assert [key_of(s) for s in live] == [started["key"]]
    session = live[0]
    # The connection's own shapes: Key object and integer State, with TimeZone.
    assert session["Key"] == {"value": started["key"]}
    assert session["State"] == STATE_CODES["Live"]
    assert session["TimeZone"] == "UTC"
    assert session["Id"] == started["id"]
    assert session["Identifier"] == started["identifier"]
    assert session["TimeOfRecording"] == started["time_of_recording"]
    assert session["StartTime"] == started["start_time"]
    assert session["LapsCount"] == 0
    assert ticks(session["StartTime"]) <= ticks(session["EndTime"])
    assert ticks(session["EndTime"]) < ticks(started["planned_end_time"])
    # It is the newest session of the connection, in the v1 dialect too.
    assert key_of(api.json(f"/api/connections/{SEASON}/sessions")[0]) == started["key"]
    v1 = api.json(f"/api/v1/connections/{SEASON}/sessions/live")
    assert [key_of(s) for s in v1] == [started["key"]]

    details = api.json(base_of(started["key"]) + "/details")
    assert [d["Name"] for d in details] == DETAIL_NAMES
    assert {d["Name"]: d["Value"] for d in details}["Session Name"] == "LIVE Silverstone R1 KHA"
    assert api.json(base_of(started["key"]) + "/laps") == []
    assert len(api.json(base_of(started["key"]) + "/parameters")) == 24

    listing = http.get(RECORD).json()["recordings"]
    assert [r["key"] for r in listing] == [started["key"]]
    assert http.get(f"{RECORD}/{started['key']}").json()["state"] == "Live"
    # Other connections are not affected.
    assert live_sessions(api, SIM) == []


def test_a_name_state_connection_shows_live_state_names(api: Api, http: httpx.Client) -> None:
    live = record(http, connection=SIM, speed=1, laps=3)
    hidden = record(http, connection=SIM, speed=1, laps=3, state="LiveNotInServer", driver="BRV")
    assert live["key"] != hidden["key"]
    states = {key_of(s): s["State"] for s in live_sessions(api, SIM)}
    assert states == {live["key"]: "Live", hidden["key"]: "LiveNotInServer"}
    assert hidden["state"] == "LiveNotInServer"
    # The Metadata-page shape: Key a plain string, no TimeZone.
    session = live_sessions(api, SIM)[0]
    assert isinstance(session["Key"], str)
    assert "TimeZone" not in session


def test_laps_grow_as_the_clock_completes_them(api: Api, http: httpx.Client) -> None:
    started = record(http, connection=SEASON, speed=120, laps=6, lap_seconds=50)
    base = base_of(started["key"])

    def laps_at_least(n: int) -> list[dict[str, Any]] | None:
        laps: list[dict[str, Any]] = api.json(base + "/laps")
        return laps if len(laps) >= n else None

    first = wait_for(lambda: laps_at_least(1))
    second = wait_for(lambda: laps_at_least(len(first) + 1))
    assert second[: len(first)] == first  # completed laps never change
    assert second[0]["Name"] == "Out Lap"
    assert second[0]["StartTime"] == started["start_time"]
    assert [lap["Number"] for lap in second] == list(range(len(second)))
    assert all(lap["Name"] == f"Lap {lap['Number']}" for lap in second[1:])
    assert all(lap["CountForFastestLap"] for lap in second[1:])
    assert all(a["EndTime"] == b["StartTime"] for a, b in itertools.pairwise(second))
    assert all(45 < ticks(lap["LapTime"]) / 10_000_000 < 55 for lap in second[1:])
    # The session's LapsCount and EndTime follow: every listed lap ended before EndTime.
    session = next(s for s in live_sessions(api) if key_of(s) == started["key"])
    assert session["LapsCount"] >= len(second)
    assert ticks(session["EndTime"]) >= ticks(second[-1]["EndTime"])
    # The in lap (number 7) is not there before the clock completes it.
    status = api.get(base + "/laps/7").status_code
    if http.get(f"{RECORD}/{started['key']}").json()["laps_count"] < 8:
        assert status == 404


def test_samples_stop_at_the_clock_and_count_grows(api: Api, http: httpx.Client) -> None:
    started = record(http, connection=SEASON, speed=100, laps=3, lap_seconds=50)
    key, start = started["key"], ticks(started["start_time"])
    data = base_of(key) + f"/parameters/{SPEED}/10/data"
    wait_for(lambda: api.json(data + "/count") or None)

    def clock() -> int:
        return ticks(http.get(f"{RECORD}/{key}").json()["clock"])

    before = clock()
    count = api.json(data + "/count")
    samples = api.json(data, pageSize=100_000)
    ranges = api.json(data + "/timeRanges")
    after = clock()
    # Sample j (at StartTime + j/10 s) is served once its whole interval lies before the clock.
    assert start + (count + 1) * TENTH > before
    assert start + len(samples) * TENTH <= after
    assert [ticks(s["Time"]) for s in samples] == [start + j * TENTH for j in range(len(samples))]
    assert len(ranges) == 1
    assert ticks(ranges[0]["StartTime"]) == start
    assert ticks(ranges[0]["EndTime"]) <= after
    assert all(0 <= s["Values"]["vCar:Chassis"] < 400 for s in samples)

    # from/to narrow a live session as any other, and the clock still cuts it off.
    half = len(samples) // 2
    assert api.json(data, pageSize=100_000, to=samples[half]["Time"]) == samples[:half]
    recent = api.json(data, pageSize=100_000, **{"from": timespan(after)})
    later = clock()
    assert all(after <= ticks(s["Time"]) <= later - TENTH for s in recent)

    def grown() -> int | None:
        later: int = api.json(data + "/count")
        return later if later > count + 10 else None

    assert wait_for(grown) > count

    # Only completed laps can be asked for; the lap's samples lie inside it.
    out_lap = wait_for(lambda: api.json(base_of(key) + "/laps") or None)[0]
    out_samples = api.json(data, lap=0, pageSize=100_000)
    assert ticks(out_samples[0]["Time"]) == ticks(out_lap["StartTime"])
    assert ticks(out_samples[-1]["Time"]) < ticks(out_lap["EndTime"])
    status = api.get(data, lap=4).status_code  # the in lap
    if http.get(f"{RECORD}/{key}").json()["laps_count"] < 5:
        assert status == 404

    # What was served live is exactly what the finished session serves.
    finished = wait_for(lambda: not http.get(f"{RECORD}/{key}").json()["recording"] or None)
    assert finished
    whole = api.json(data, pageSize=100_000)
    assert whole[: len(samples)] == samples
    assert len(whole) > len(samples)


def test_the_session_finishes_turns_historical_and_leaves_live(
    api: Api, http: httpx.Client
) -> None:
    started = record(http, connection=SEASON, speed=3000, laps=2, lap_seconds=60)
    key = started["key"]
    time.sleep(started["real_seconds_left"] + 0.05)
    done = http.get(f"{RECORD}/{key}").json()
    assert (done["state"], done["recording"], done["stopped"]) == ("Historical", False, False)
    assert done["clock"] == done["end_time"] == done["planned_end_time"]
    assert done["laps_count"] == done["planned_laps_count"] == 4
    assert done["real_seconds_left"] == 0

    assert live_sessions(api) == []
    session = listed(api, SEASON, key)
    assert session is not None
    assert session["State"] == STATE_CODES["Historical"]
    assert session["LapsCount"] == 4
    assert session["EndTime"] == started["planned_end_time"]
    laps = api.json(base_of(key) + "/laps")
    assert [lap["Name"] for lap in laps] == ["Out Lap", "Lap 1", "Lap 2", "In Lap"]
    assert ticks(laps[-1]["EndTime"]) < ticks(session["EndTime"])  # then the garage
    ranges = api.json(base_of(key) + "/parameters/vCar:Chassis/1/data/timeRanges")
    assert (ranges[0]["StartTime"], ranges[0]["EndTime"]) == (
        session["StartTime"],
        session["EndTime"],
    )
    # Stopping a finished recording changes nothing.
    assert http.delete(f"{RECORD}/{key}").json() == done


def test_stop_ends_a_recording_at_its_clock(api: Api, http: httpx.Client) -> None:
    started = record(http, connection=SEASON, speed=150, laps=10, lap_seconds=50)
    other = record(http, connection=SEASON, speed=1, laps=10)
    key = started["key"]
    wait_for(lambda: api.json(base_of(key) + "/laps") or None)

    response = http.delete(f"{RECORD}/{key}")
    assert response.status_code == 200
    stopped = response.json()
    assert (stopped["state"], stopped["recording"], stopped["stopped"]) == (
        "Historical",
        False,
        True,
    )
    assert stopped["end_time"] == stopped["clock"]
    assert 1 <= stopped["laps_count"] < stopped["planned_laps_count"] == 12
    assert [key_of(s) for s in live_sessions(api)] == [other["key"]]

    data = base_of(key) + f"/parameters/{SPEED}/10/data"
    session = listed(api, SEASON, key)
    assert session is not None
    assert session["State"] == STATE_CODES["Historical"]
    assert session["EndTime"] == stopped["end_time"]
    assert session["LapsCount"] == stopped["laps_count"]
    count = api.json(data + "/count")
    ranges = api.json(data + "/timeRanges")
    assert ranges[-1]["EndTime"] == session["EndTime"]
    time.sleep(0.3)  # a running clock would have added about 45 s by now
    assert http.get(f"{RECORD}/{key}").json() == stopped
    assert api.json(data + "/count") == count
    assert len(api.json(base_of(key) + "/laps")) == stopped["laps_count"]

    assert http.delete(f"{RECORD}/{key}").json() == stopped  # stopping again changes nothing
    missing = http.delete(f"{RECORD}/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert "no recording" in missing.json()["error"]
    # DELETE on the collection stops every recording.
    everything = http.delete(RECORD).json()["recordings"]
    assert [(r["key"], r["state"]) for r in everything] == [
        (key, "Historical"),
        (other["key"], "Historical"),
    ]
    assert live_sessions(api) == []


def test_reset_discards_recordings_and_restarts_their_numbering(
    sandbox: Sandbox, api: Api, http: httpx.Client
) -> None:
    body = {"connection": SEASON, "speed": 3000, "laps": 2, "lap_seconds": 55}
    first = record(http, **body)
    time.sleep(first["real_seconds_left"] + 0.05)
    laps = api.json(base_of(first["key"]) + "/laps")
    values = api.json(base_of(first["key"]) + f"/parameters/{SPEED}/5/data", pageSize=300)
    live = record(http, connection=SEASON)
    assert live["key"] != first["key"]

    sandbox.reset("sqlrace")
    api = Api(http)  # reset forgets tokens too
    assert http.get(RECORD).json() == {"recordings": []}
    assert live_sessions(api) == []
    assert listed(api, SEASON, first["key"]) is None
    assert api.get(base_of(live["key"]) + "/laps").status_code == 404

    # The same body after a reset records the same run: key, lap times and samples.
    again = record(http, **body)
    assert (again["key"], again["id"], again["name"]) == (first["key"], first["id"], first["name"])
    time.sleep(again["real_seconds_left"] + 0.05)
    assert [lap["LapTime"] for lap in api.json(base_of(again["key"]) + "/laps")] == [
        lap["LapTime"] for lap in laps
    ]
    repeat = api.json(base_of(again["key"]) + f"/parameters/{SPEED}/5/data", pageSize=300)
    assert [s["Values"] for s in repeat] == [s["Values"] for s in values]


def test_sessions_live_pages_by_each_dialects_documented_default(
    api: Api, http: httpx.Client
) -> None:
    for _ in range(51):
        record(http, connection=SIM, laps=1)
    assert len(api.json(f"/api/connections/{SIM}/sessions/live")) == 51  # 2018: 200
    assert len(api.json(f"/api/v1/connections/{SIM}/sessions/live")) == 50  # 2019: 50
    assert len(api.json(f"/api/v1/connections/{SIM}/sessions/live", page=1)) == 1
    assert len(api.json(f"/api/connections/{SIM}/sessions/live", pageSize=20)) == 20
    # The full list keeps the emulator's default of 50.
    assert len(api.json(f"/api/connections/{SIM}/sessions")) == 50


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "JSON object"),
        ([1, 2], "JSON object"),
        ({}, "connection is required"),
        ({"connection": "Nowhere"}, "connection must be one of"),
        ({"connection": 7}, "connection must be one of"),
        ({"connection": SEASON, "speeed": 2}, "unknown keys: speeed"),
        ({"connection": SEASON, "speed": 0}, "speed must be above 0"),
        ({"connection": SEASON, "speed": -5}, "speed must be above 0"),
        ({"connection": SEASON, "speed": 1e9}, "speed must be above 0"),
        ({"connection": SEASON, "speed": "fast"}, "speed must be a number"),
        ({"connection": SEASON, "speed": True}, "speed must be a number"),
        ({"connection": SEASON, "laps": -1}, "laps must be a whole number"),
        ({"connection": SEASON, "laps": 2.5}, "laps must be a whole number"),
        ({"connection": SEASON, "laps": 201}, "laps must be a whole number"),
        ({"connection": SEASON, "lap_seconds": 10}, "lap_seconds must lie in"),
        ({"connection": SEASON, "lap_seconds": None}, "lap_seconds must be a number"),
        ({"connection": SEASON, "circuit": "Nowhere"}, "circuit must be one of"),
        ({"connection": SEASON, "state": "Historical"}, "state must be one of"),
        ({"connection": SEASON, "driver": ""}, "driver must be a non-empty string"),
        ({"connection": SEASON, "car": "x" * 61}, "car must be a non-empty string"),
    ],
)
def test_bad_bodies_are_400_with_a_message(
    api: Api, http: httpx.Client, body: Any, message: str
) -> None:
    if isinstance(body, str):
        response = http.post(RECORD, content=body, headers={"Content-Type": "application/json"})
    else:
        response = http.post(RECORD, json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert http.get(RECORD).json() == {"recordings": []}
    assert live_sessions(api) == []


def test_recordings_are_capped_and_unknown_ones_are_404(http: httpx.Client) -> None:
    assert http.get(f"{RECORD}/nope").status_code == 404
    for _ in range(100):
        record(http, connection=SIM, laps=0)
    refused = http.post(RECORD, json={"connection": SIM})
    assert refused.status_code == 409
    assert "reset" in refused.json()["error"]
