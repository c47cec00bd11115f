"""The OpenF1 emulator over real HTTP: query semantics, errors, auth gate and injected faults."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer

from sessiongraph.sandbox.openf1 import DATA_DIR, create_app
from tests._servers import Sandbox

SPA_2023 = "meeting_key=1216"  # 9134 FP1 07-28 11:30, 9135 Q 07-28 15:00, 9286 SQ 07-29 10:00,
# 9140 Sprint 07-29 15:05, 9141 Race 07-30 13:00 (all UTC)
SPA_RACE = "session_key=9141"
LIVE_DETAIL = (
    "Session in progress, access is restricted to authenticated users. "
    "Sign up here: https://openf1.org/auth.html"
)


def get(sandbox: Sandbox, query: str, collection: str = "sessions") -> httpx.Response:
    return sandbox.http.get(f"{sandbox.base_url('openf1')}/{collection}?{query}")


def column(response: httpx.Response, key: str = "session_key") -> list[Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return [row.get(key) for row in response.json()]


def assert_no_results(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json() == {"detail": "No results found."}


def assert_server_error(response: httpx.Response, message: str) -> None:
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "Internal Server Error" in response.text
    assert message in response.text


# --- rows as stored -----------------------------------------------------------------------------


def test_root_says_welcome(sandbox: Sandbox) -> None:
    response = sandbox.http.get(sandbox.root("openf1") + "/")
    assert response.status_code == 200
    assert response.text == "Welcome to OpenF1!"


def test_rows_are_served_exactly_as_stored(sandbox: Sandbox) -> None:
    stored = json.loads((DATA_DIR / "sessions.json").read_text())
    expected = next(row for row in stored if row["session_key"] == 9140)
    response = get(sandbox, "session_key=9140")
    assert column(response) == [9140]
    (row,) = response.json()
    assert row == expected
    assert list(row) == list(expected)
    assert row["date_start"] == "2023-07-29T15:05:00+00:00"
    assert row["session_name"] == "Sprint"


def test_post_is_served_like_get_and_its_body_ignored(sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url('openf1')}/drivers?session_key=9141&driver_number=1"
    response = sandbox.http.post(url, content=b"session_key=1")
    assert column(response, "name_acronym") == ["VER"]


def test_path_and_field_names_are_lower_cased(sandbox: Sandbox) -> None:
    response = sandbox.http.get(sandbox.root("openf1") + "/V1/Meetings?Country_Name=Belgium")
    assert column(response, "meeting_key") == [1216, 1242, 1265]


def test_other_era_samples_are_not_served(sandbox: Sandbox) -> None:
    assert "is_cancelled" not in get(sandbox, "session_key=9140").json()[0]
    assert_no_results(get(sandbox, "session_key=9140", "sessions_2023_api2026"))


def test_results_sort_by_date_start_with_nulls_first_then_keys(sandbox: Sandbox) -> None:
    rows = get(sandbox, "lap_number=1", "laps").json()
    # Null dates first (9488 #24 of meeting 1231 before 9839's 20 of meeting 1276), then by date.
    assert [(r["session_key"], r["driver_number"]) for r in rows[:2]] == [(9488, 24), (9839, 1)]
    assert all(r["date_start"] is None for r in rows[:21])
    dated = [r["date_start"] for r in rows[21:]]
    assert dated
    assert dated == sorted(dated)


# --- operators and combinations ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "positions"),
    [
        ("position=5", [5]),
        ("position<3", [1, 2]),
        ("position<=3", [1, 2, 3]),
        ("position>17", [18]),
        ("position>=17", [17, 18]),
        ("position%3E%3D17", [17, 18]),  # encoded operator
    ],
)
def test_each_operator(sandbox: Sandbox, condition: str, positions: list[int]) -> None:
    response = get(sandbox, f"{SPA_RACE}&{condition}", "session_result")
    assert column(response, "position") == positions


def test_null_never_matches_a_bound(sandbox: Sandbox) -> None:
    # The two retirements of 9141 have position null.
    response = get(sandbox, f"{SPA_RACE}&position<=100", "session_result")
    assert column(response, "position") == list(range(1, 19))


def test_repeated_equalities_are_ored(sandbox: Sandbox) -> None:
    assert column(get(sandbox, "session_key=9141&session_key=9140")) == [9140, 9141]


@pytest.mark.parametrize(
    ("query", "collection", "key", "expected"),
    [
        (
            f"{SPA_RACE}&position>=4&position<=7&position>=10",
            "session_result",
            "position",
            [4, 5, 6, 7, *range(10, 19)],
        ),
        (
            "session_key=9839&driver_number=1&lap_number>5&lap_number<3",
            "laps",
            "lap_number",
            [1, 2, *range(6, 59)],
        ),
    ],
)
def test_bounds_pair_into_ored_intervals(
    sandbox: Sandbox, query: str, collection: str, key: str, expected: list[int]
) -> None:
    assert column(get(sandbox, query, collection), key) == expected


def test_repeated_lower_bounds_are_ored(sandbox: Sandbox) -> None:
    years = column(get(sandbox, "year>=2024&year>=2023", "meetings"), "year")
    assert set(years) == {2023, 2024, 2025}


def test_different_fields_are_anded(sandbox: Sandbox) -> None:
    response = get(sandbox, f"{SPA_2023}&session_type=Race", "sessions")
    assert column(response) == [9140, 9141]


def test_strings_match_exactly_and_case_sensitively(sandbox: Sandbox) -> None:
    assert column(get(sandbox, "country_name=Belgium", "meetings"), "meeting_key") == [
        1216,
        1242,
        1265,
    ]
    assert_no_results(get(sandbox, "country_name=belgium", "meetings"))
    assert_no_results(get(sandbox, "country_name=Belg", "meetings"))


def test_types_must_agree(sandbox: Sandbox) -> None:
    assert len(column(get(sandbox, f"{SPA_RACE}&dnf=true", "session_result"))) == 2
    assert len(column(get(sandbox, f"{SPA_RACE}&dnf=FALSE", "session_result"))) == 18
    assert_no_results(get(sandbox, f"{SPA_RACE}&dnf=1", "session_result"))  # number is not bool
    assert_no_results(get(sandbox, "session_key=%229141%22"))  # a string is not a number
    assert column(get(sandbox, "session_key=09141")) == [9141]  # int() accepts the zero
    assert_no_results(get(sandbox, "date_start>=2023"))  # a number never compares to a date


def test_arrays_match_on_any_element(sandbox: Sandbox) -> None:
    query = "session_key=9839&driver_number=1&lap_number<=2&segments_sector_1=2048"
    assert 1 in column(get(sandbox, query, "laps"), "lap_number")


def test_gmt_offset_is_never_cast_unless_spelt_in_capitals(sandbox: Sandbox) -> None:
    assert len(column(get(sandbox, f"{SPA_2023}&gmt_offset=02:00:00"))) == 5
    # The no-cast check runs before lower-casing, so this one becomes a datetime.
    assert_no_results(get(sandbox, f"{SPA_2023}&GMT_OFFSET=02:00:00"))


def test_mixed_type_bounds_on_one_field_fail_as_upstream(sandbox: Sandbox) -> None:
    assert_server_error(get(sandbox, "date_start>=2023&date_start<=2024-01-01"), "TypeError")


def test_comma_lists_are_not_supported(sandbox: Sandbox) -> None:
    assert_no_results(get(sandbox, "session_key=9140,9141"))


# --- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "sessions"),
    [
        ("date_start=2023-07-29", [9286, 9140]),
        ("date_start>2023-07-29", [9141]),  # from the next UTC day
        ("date_start>=2023-07-29", [9286, 9140, 9141]),
        ("date_start<2023-07-29", [9134, 9135]),
        ("date_start<=2023-07-29", [9134, 9135, 9286, 9140]),  # to the end of the day
        ("date_start=Jul 29, 2023", [9286, 9140]),
    ],
)
def test_date_only_values_cover_the_utc_day(
    sandbox: Sandbox, condition: str, sessions: list[int]
) -> None:
    assert column(get(sandbox, f"{SPA_2023}&{condition}")) == sessions


def test_repeated_days_are_ored(sandbox: Sandbox) -> None:
    response = get(sandbox, f"{SPA_2023}&date_start=2023-07-28&date_start=2023-07-30")
    assert column(response) == [9134, 9135, 9141]


@pytest.mark.parametrize(
    ("condition", "sessions"),
    [
        ("date_start=2023-07-29T15:05:00Z", [9140]),
        ("date_start>2023-07-29T10:00:00Z", [9140, 9141]),
        ("date_start>=2023-07-29T10:00:00", [9286, 9140, 9141]),  # naive means UTC
        ("date_start<2023-07-28T15:00:00-00:00", [9134]),
        ("date_start=2023-07-29T17:05:00%2B02:00", [9140]),  # converted to UTC
        ("date_start=2023-07-29T17:05:00+02:00", [9140]),  # `+` became a space, then repaired
        ("date_start=2023-07-29 17:05:00%2B02:00", [9140]),
    ],
)
def test_values_with_a_time_compare_exactly(
    sandbox: Sandbox, condition: str, sessions: list[int]
) -> None:
    assert column(get(sandbox, f"{SPA_2023}&{condition}")) == sessions


def test_midnight_counts_as_a_time(sandbox: Sandbox) -> None:
    assert_no_results(get(sandbox, f"{SPA_2023}&date_start=2023-07-29T00:00"))


def test_raw_plus_in_the_space_separated_form_breaks(sandbox: Sandbox) -> None:
    assert_no_results(get(sandbox, f"{SPA_2023}&date_start=2023-07-29 17:05:00+02:00"))


def test_reversed_operator_is_an_equality_on_a_string(sandbox: Sandbox) -> None:
    assert_no_results(get(sandbox, f"{SPA_2023}&date_start=>2023-07-29"))
    assert_no_results(get(sandbox, f"{SPA_2023}&date_start=<2023-07-29"))


def test_three_letter_codes_that_read_as_dates_match_nothing(sandbox: Sandbox) -> None:
    assert_no_results(get(sandbox, "country_code=MON", "meetings"))
    monaco = get(sandbox, "country_key=114", "meetings")
    assert column(monaco, "meeting_key") == [1210, 1236, 1261]
    assert {row["country_code"] for row in monaco.json()} == {"MON"}
    assert len(column(get(sandbox, "country_code=BEL", "meetings"))) == 3


# --- csv ----------------------------------------------------------------------------------------


def test_csv_output(sandbox: Sandbox) -> None:
    response = get(sandbox, "session_key=9140&csv=true")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == "attachment; filename=sessions.csv"
    header, row, end = response.text.split("\r\n")
    assert header == (
        "circuit_key,circuit_short_name,country_code,country_key,country_name,date_end,"
        "date_start,gmt_offset,location,meeting_key,session_key,session_name,session_type,year"
    )
    assert row == (
        "7,Spa-Francorchamps,BEL,16,Belgium,2023-07-29 15:35:00+00:00,2023-07-29 15:05:00+00:00,"
        "02:00:00,Spa-Francorchamps,1216,9140,Sprint,Race,2023"
    )
    assert end == ""


def test_csv_writes_python_values(sandbox: Sandbox) -> None:
    query = "session_key=9839&driver_number=1&lap_number=1&csv=1"
    text = get(sandbox, query, "laps").text
    (row,) = csv.DictReader(io.StringIO(text))
    assert list(row) == sorted(row)
    assert row["date_start"] == ""  # null
    assert row["is_pit_out_lap"] == "False"
    assert row["duration_sector_2"] == "38.489"
    assert row["segments_sector_1"] == "[2048, 2049, 2051, 2051, 2051]"
    assert '"[2048, 2049, 2051, 2051, 2051]"' in text


def test_csv_false_gives_json_and_empty_csv_fails(sandbox: Sandbox) -> None:
    assert column(get(sandbox, "session_key=9140&csv=false")) == [9140]
    assert_server_error(get(sandbox, "session_key=1&csv=true"), "No results")


# --- empty results and errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("collection", "query"),
    [
        ("sessions", "session_key=1"),
        ("sessions", "session_key=9140&limit=1"),  # no paging: an unknown field
        ("sessions", "session_key=9140&sort=date_start"),
        ("tyre_data", "session_key=9140"),  # unknown collection is empty
        ("sessions", "meeting_key=latest&session_key=9140"),
    ],
)
def test_empty_results_are_404(sandbox: Sandbox, collection: str, query: str) -> None:
    assert_no_results(get(sandbox, query, collection))


@pytest.mark.parametrize("query", ["session_key", "session_key=", "session_key=9140&foo"])
def test_filter_without_operator_is_500(sandbox: Sandbox, query: str) -> None:
    assert_server_error(get(sandbox, query), "No valid operator found")


@pytest.mark.parametrize("path", ["/v1/sessions/", "/v2/sessions", "/sessions", "/?year=2023"])
def test_bad_path_is_500(sandbox: Sandbox, path: str) -> None:
    assert_server_error(sandbox.http.get(sandbox.root("openf1") + path), "Invalid route")


# --- latest -------------------------------------------------------------------------------------


@asynccontextmanager
async def pinned(now: datetime, data_dir: Path = DATA_DIR) -> AsyncIterator[Callable[[str], Any]]:
    """An emulator whose clock reads `now`, and a coroutine function GETting a path from it."""
    server = TestServer(create_app(clock=lambda: now, data_dir=data_dir))
    async with server, httpx.AsyncClient(base_url=str(server.make_url(""))) as client:
        yield client.get


async def test_latest_is_the_last_session_started() -> None:
    async with pinned(datetime(2024, 3, 3, tzinfo=UTC)) as fetch:
        sessions = (await fetch("/v1/sessions?session_key=latest")).json()
        assert [s["session_key"] for s in sessions] == [9472]
        meetings = (await fetch("/v1/meetings?meeting_key=latest")).json()
        assert [m["meeting_name"] for m in meetings] == ["Bahrain Grand Prix"]
        results = (await fetch("/v1/session_result?session_key=latest&position<=3")).json()
        assert [(r["session_key"], r["driver_number"]) for r in results] == [
            (9472, 1),
            (9472, 11),
            (9472, 55),
        ]
        later = (await fetch("/v1/sessions?session_key>latest&year=2024")).json()
        assert later[0]["session_key"] != 9472
        assert later[0]["date_start"] > "2024-03-02T15:00"


async def test_latest_counts_sessions_starting_within_a_minute() -> None:
    async with pinned(datetime(2024, 3, 2, 14, 59, 30, tzinfo=UTC)) as fetch:
        assert (await fetch("/v1/sessions?session_key=latest")).json()[0]["session_key"] == 9472
    async with pinned(datetime(2024, 3, 2, 14, 58, tzinfo=UTC)) as fetch:
        assert (await fetch("/v1/sessions?session_key=latest")).json()[0]["session_key"] == 9468


async def test_latest_skips_cancelled_sessions(tmp_path: Path) -> None:
    def session(key: int, start: str, cancelled: bool | None) -> dict[str, Any]:
        row: dict[str, Any] = {"session_key": key, "meeting_key": key // 10, "date_start": start}
        if cancelled is not None:
            row["is_cancelled"] = cancelled
        return row

    rows = [
        session(10, "2026-04-01T10:00:00+00:00", None),
        session(20, "2026-04-02T10:00:00+00:00", False),
        session(30, "2026-04-03T10:00:00+00:00", True),
        session(40, "2026-05-01T10:00:00+00:00", False),
    ]
    (tmp_path / "sessions.json").write_text(json.dumps(rows))
    async with pinned(datetime(2026, 4, 10, tzinfo=UTC), tmp_path) as fetch:
        response = await fetch("/v1/sessions?meeting_key=latest")
        assert [s["session_key"] for s in response.json()] == [20]
    async with pinned(datetime(2026, 4, 1, 12, tzinfo=UTC), tmp_path) as fetch:
        response = await fetch("/v1/sessions?session_key=latest")
        assert [s["session_key"] for s in response.json()] == [10]
    async with pinned(datetime(2020, 1, 1, tzinfo=UTC), tmp_path) as fetch:
        assert (await fetch("/v1/sessions?session_key=latest")).status_code == 500


# --- token and the live-session gate ------------------------------------------------------


def test_token_and_live_session_gate(sandbox: Sandbox) -> None:
    root = sandbox.root("openf1")
    url = f"{sandbox.base_url('openf1')}/sessions?session_key=9140"
    bad = sandbox.http.post(root + "/token", data={"username": "sandbox", "password": "nope"})
    assert bad.status_code == 401
    assert "detail" in bad.json()

    token = sandbox.http.post(root + "/token", data={"username": "sandbox", "password": "sandbox"})
    assert token.status_code == 200
    grant = token.json()
    assert grant["token_type"] == "bearer"
    assert grant["expires_in"] == "3600"
    bearer = {"Authorization": f"Bearer {grant['access_token']}"}

    live = sandbox.http.post(root + "/__sandbox/openf1/live", json={"active": True})
    assert live.json() == {"active": True}
    anonymous = sandbox.http.get(url)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": LIVE_DETAIL}
    assert sandbox.http.get(url, headers={"Authorization": "Bearer forged"}).status_code == 401
    assert column(sandbox.http.get(url, headers=bearer)) == [9140]

    sandbox.reset("openf1")
    assert column(sandbox.http.get(url)) == [9140]
    assert sandbox.http.get(root + "/__sandbox/openf1/live").json() == {"active": False}


def test_live_switch_rejects_bad_payloads(sandbox: Sandbox) -> None:
    url = sandbox.root("openf1") + "/__sandbox/openf1/live"
    assert sandbox.http.post(url, json={"active": "yes"}).status_code == 400
    assert sandbox.http.post(url, content=b"{").status_code == 400


# --- faults through the control plane -----------------------------------------------------


def test_latency_fault(sandbox: Sandbox) -> None:
    sandbox.faults("openf1", latency_ms=150)
    started = time.perf_counter()
    assert column(get(sandbox, "session_key=9140")) == [9140]
    assert time.perf_counter() - started >= 0.15


@pytest.mark.parametrize(
    ("status", "title"),
    [(503, "503 Service Unavailable"), (502, "502 Bad Gateway"), (504, "504 Gateway Timeout")],
)
def test_server_error_faults_look_like_the_proxy(sandbox: Sandbox, status: int, title: str) -> None:
    sandbox.faults("openf1", error_rate=1.0, error_status=status)
    response = get(sandbox, "session_key=9140")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<title>{title}</title>" in response.text


def test_injected_429_says_rate_exceeded_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.faults("openf1", error_rate=1.0, error_status=429, retry_after=2)
    response = get(sandbox, "session_key=9140")
    assert response.status_code == 429
    assert response.text == "Rate exceeded"
    assert response.headers["retry-after"] == "2"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"detail": LIVE_DETAIL}),
        (404, {"detail": "No results found."}),
        (422, {"detail": "Request too large"}),
        (408, {"detail": "Request Timeout"}),
    ],
)
def test_json_faults(sandbox: Sandbox, status: int, body: dict[str, str]) -> None:
    sandbox.faults("openf1", error_rate=1.0, error_status=status)
    response = get(sandbox, "session_key=9140")
    assert (response.status_code, response.json()) == (status, body)


def test_rate_limit_fault(sandbox: Sandbox) -> None:
    sandbox.faults("openf1", rate_limit_per_second=2)
    statuses = [get(sandbox, "session_key=9140").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = get(sandbox, "session_key=9140")
    assert limited.text == "Rate exceeded"
    assert "retry-after" not in limited.headers


def test_requests_are_counted_by_path(sandbox: Sandbox) -> None:
    for query in ("session_key=9140", "session_key=9141", "session_key=1"):
        get(sandbox, query)
    get(sandbox, "session_key=9141", "drivers")
    stats = sandbox.stats("openf1")
    assert stats["requests"] == 4
    assert stats["by_path"] == {"/v1/sessions": 3, "/v1/drivers": 1}
    assert stats["by_method_path"]["GET /v1/sessions"] == 3


def test_the_free_tier_is_enforced_like_production(sandbox: Sandbox) -> None:
    sandbox.faults("openf1", rate_limit_per_second=3, rate_limit_per_minute=30)
    url = sandbox.base_url("openf1") + "/meetings?" + SPA_2023
    answers = [httpx.get(url) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].text == "Rate exceeded"
    assert "retry-after" not in answers[3].headers
    time.sleep(1.05)
    assert httpx.get(url).status_code == 200  # refused requests do not count
    assert sandbox.stats("openf1")["rate_limited"] == 1


def test_the_minute_window_slides(sandbox: Sandbox) -> None:
    sandbox.faults("openf1", rate_limit_per_minute=5)
    url = sandbox.base_url("openf1") + "/meetings?" + SPA_2023
    assert [httpx.get(url).status_code for _ in range(6)] == [200] * 5 + [429]


def test_synthetic_rows_replace_or_add_until_reset(sandbox: Sandbox) -> None:
    control = sandbox.root("openf1") + "/__sandbox/openf1/rows"
    row = {"session_key": 9141, "meeting_key": 1216, "session_name": "Race", "is_cancelled": True}
    assert httpx.post(control, json={"collection": "sessions", "rows": [row]}).json() == {
        "upserted": 1
    }
    found = httpx.get(sandbox.base_url("openf1") + "/sessions?" + SPA_RACE).json()
    assert found == [row]
    assert httpx.post(control, json={"collection": "laps", "rows": []}).status_code == 400
    assert httpx.post(control, json={"collection": "sessions", "rows": [{}]}).status_code == 400
    sandbox.reset("openf1")
    found = httpx.get(sandbox.base_url("openf1") + "/sessions?" + SPA_RACE).json()
    assert found[0]["date_start"] == "2023-07-30T13:00:00+00:00"


# --- synthetic car_data and location ------------------------------------------------------

ABU_DHABI = "session_key=9839"  # the 2025 Abu Dhabi race: laps for 20 drivers
DATE_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")
CAR_KEYS = [
    "meeting_key",
    "session_key",
    "driver_number",
    "date",
    "rpm",
    "speed",
    "n_gear",
    "throttle",
    "brake",
    "drs",
]
LOCATION_KEYS = ["meeting_key", "session_key", "driver_number", "date", "x", "y", "z"]


def telemetry(sandbox: Sandbox, collection: str, query: str) -> list[dict[str, Any]]:
    response = get(sandbox, query, collection)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    rows: list[dict[str, Any]] = response.json()
    return rows


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_car_data_rows_are_plausible(sandbox: Sandbox) -> None:
    window = "date>=2025-12-07T13:30:00Z&date<2025-12-07T13:35:00Z"
    rows = telemetry(sandbox, "car_data", f"{ABU_DHABI}&driver_number=1&{window}")
    assert 1080 <= len(rows) <= 1140  # five minutes at about 3.7 Hz
    for row in rows:
        assert list(row) == CAR_KEYS
        assert (row["meeting_key"], row["session_key"], row["driver_number"]) == (1276, 9839, 1)
        assert DATE_FORMAT.match(row["date"]), row["date"]
        assert 60 <= row["speed"] <= 345
        assert 9_900 <= row["rpm"] <= 12_600
        assert 1 <= row["n_gear"] <= 8
        assert 0 <= row["throttle"] <= 100
        assert row["brake"] in (0, 100)
        assert row["drs"] in (0, 1, 8, 10, 12, 14)
        assert row["brake"] == 0 or row["throttle"] == 0
    speeds = [row["speed"] for row in rows]
    assert max(speeds) > 280
    assert min(speeds) < 120
    assert {row["brake"] for row in rows} == {0, 100}
    assert {row["n_gear"] for row in rows} == set(range(1, 9))
    drs = [row["drs"] for row in rows]
    assert sum(code in (0, 1) for code in drs) > len(drs) / 2


def test_location_rows_are_integers_on_one_circuit(sandbox: Sandbox) -> None:
    window = "date>=2024-03-24T04:30:00Z&date<2024-03-24T04:35:00Z"
    rows = telemetry(sandbox, "location", f"session_key=9488&driver_number=16&{window}")
    assert len(rows) > 1000
    for row in rows:
        assert list(row) == LOCATION_KEYS
        assert (row["meeting_key"], row["session_key"], row["driver_number"]) == (1231, 9488, 16)
        assert DATE_FORMAT.match(row["date"]), row["date"]
        assert all(type(row[axis]) is int for axis in ("x", "y", "z"))
    xs = [row["x"] for row in rows]
    ys = [row["y"] for row in rows]
    assert max(xs) - min(xs) > 5_000  # decimetres: the circuit is kilometres across
    assert max(ys) - min(ys) > 5_000


def test_samples_are_about_3_7_hz_over_the_whole_race(sandbox: Sandbox) -> None:
    rows = telemetry(sandbox, "car_data", f"{ABU_DHABI}&driver_number=4")
    dates = [moment(row["date"]) for row in rows]
    gaps = [(b - a).total_seconds() for a, b in pairwise(dates)]
    assert min(gaps) >= 0.25
    assert max(gaps) <= 0.29
    assert 3.6 <= (len(gaps) / (dates[-1] - dates[0]).total_seconds()) <= 3.8
    laps = get(sandbox, f"{ABU_DHABI}&driver_number=4", "laps").json()
    last = laps[-1]
    end = moment(last["date_start"]).timestamp() + (last["lap_duration"] or 90)
    assert abs(dates[-1].timestamp() - end) < 2
    second = moment(laps[1]["date_start"])  # lap 1 has no date_start: it starts a lap earlier
    assert 80 < (second - dates[0]).total_seconds() < 100


def test_date_window_edges_are_inclusive_then_exclusive(sandbox: Sandbox) -> None:
    base = f"{ABU_DHABI}&driver_number=1"
    rows = telemetry(sandbox, "car_data", f"{base}&date>=2025-12-07T14:00:00Z")
    first, sixth = rows[10]["date"], rows[15]["date"]
    window = telemetry(
        sandbox, "car_data", f"{base}&date>={first}&date<{sixth}".replace("+", "%2B")
    )
    assert [row["date"] for row in window] == [row["date"] for row in rows[10:15]]
    after = telemetry(sandbox, "car_data", f"{base}&date>{first}&date<={sixth}".replace("+", "%2B"))
    assert [row["date"] for row in after] == [row["date"] for row in rows[11:16]]
    # The same instant in other spellings: `Z`, `%2B04:00`, and a raw `+` repaired by the server.
    local = (moment(first) + timedelta(hours=4)).replace(tzinfo=None).isoformat()
    spellings = [
        f"date>={first.replace('+00:00', 'Z')}",
        f"date>={local}%2B04:00",
        f"date>={local}+04:00",
    ]
    for spelling in spellings:
        query = f"{base}&{spelling}&date<{sixth}".replace("+00:00", "%2B00:00")
        assert get(sandbox, query, "car_data").json() == window, spelling


def test_same_request_gives_the_same_bytes(sandbox: Sandbox) -> None:
    query = f"{ABU_DHABI}&driver_number=44&date>=2025-12-07T13:20:00Z&date<2025-12-07T13:40:00Z"
    first = get(sandbox, query, "location")
    again = get(sandbox, query, "location")
    assert first.status_code == 200
    assert first.content == again.content
    car = get(sandbox, query, "car_data")
    assert car.content == get(sandbox, query, "car_data").content


async def test_a_fresh_emulator_gives_the_same_bytes(sandbox: Sandbox) -> None:
    query = f"{ABU_DHABI}&driver_number=63&date>=2025-12-07T14:10:00Z&date<2025-12-07T14:12:00Z"
    shared = get(sandbox, query, "car_data")
    async with pinned(datetime(2025, 12, 8, tzinfo=UTC)) as fetch:
        fresh = await fetch(f"/v1/car_data?{query}")
        assert fresh.content == shared.content
        latest = await fetch(f"/v1/car_data?{query.replace('9839', 'latest')}")
        assert latest.content == shared.content


@pytest.mark.parametrize("collection", ["car_data", "location"])
@pytest.mark.parametrize(
    "query",
    [
        "",
        ABU_DHABI,
        "driver_number=1",
        f"{ABU_DHABI}&date>=2025-12-07T14:00:00Z&date<2025-12-07T14:00:05Z",
        f"{ABU_DHABI}&driver_number>=1",
        f"{ABU_DHABI}&driver_number=1&driver_number=4",
        "meeting_key=1276&driver_number=1",
    ],
)
def test_telemetry_without_one_session_and_driver_is_422(
    sandbox: Sandbox, collection: str, query: str
) -> None:
    response = get(sandbox, query, collection)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("Request too large")
    assert "session_key" in detail
    assert "driver_number" in detail


@pytest.mark.parametrize("collection", ["car_data", "location"])
@pytest.mark.parametrize(
    "query",
    [
        "session_key=9141&driver_number=1",  # a session without laps
        f"{ABU_DHABI}&driver_number=2",  # nobody with that number
        f"{ABU_DHABI}&driver_number=true",  # a bool never equals a number
        f"{ABU_DHABI}&driver_number=1&date>=2025-12-07T16:00:00Z",  # after the race
        f"{ABU_DHABI}&driver_number=1&speed>400",
    ],
)
def test_telemetry_without_data_is_404(sandbox: Sandbox, collection: str, query: str) -> None:
    assert_no_results(get(sandbox, query, collection))


def test_telemetry_filters_like_other_endpoints(sandbox: Sandbox) -> None:
    base = f"{ABU_DHABI}&driver_number=1.0&date<2025-12-07T13:20:00Z"
    fast = telemetry(sandbox, "car_data", f"{base}&speed>=295&n_gear=8")
    assert fast
    assert all(row["speed"] >= 295 and row["n_gear"] == 8 for row in fast)
    assert all(row["driver_number"] == 1 for row in fast)
    text = get(sandbox, f"{base}&speed>=295&n_gear=8&csv=true", "car_data").text
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(fast)
    assert list(table[0]) == sorted(CAR_KEYS)
    assert table[0]["date"] == fast[0]["date"].replace("T", " ")


def test_location_traces_the_loop_once_per_lap(sandbox: Sandbox) -> None:
    laps = get(sandbox, f"{ABU_DHABI}&driver_number=81", "laps").json()
    for lap, following in pairwise(laps[9:15]):
        window = f"date>={lap['date_start']}&date<{following['date_start']}".replace("+", "%2B")
        rows = telemetry(sandbox, "location", f"{ABU_DHABI}&driver_number=81&{window}")
        points = [(row["x"], row["y"]) for row in rows]
        assert math.dist(points[0], points[-1]) < 600  # 60 m: one sample either side of the line
        assert max(math.dist(points[0], p) for p in points) > 8_000


def test_speed_follows_the_laps(sandbox: Sandbox) -> None:
    query = f"{ABU_DHABI}&driver_number=1"
    rows = telemetry(sandbox, "car_data", query)
    laps = {lap["lap_number"]: lap for lap in get(sandbox, query, "laps").json()}

    def mean_speed(number: int) -> float:
        start, end = laps[number]["date_start"], laps[number + 1]["date_start"]
        speeds = [row["speed"] for row in rows if start <= row["date"] < end]
        return sum(speeds) / len(speeds)

    pit_out = next(n for n, lap in laps.items() if lap["is_pit_out_lap"] and n > 1)
    assert mean_speed(pit_out) < 0.9 * mean_speed(pit_out + 2)
    by_gear: dict[int, list[int]] = {}
    for row in rows:
        by_gear.setdefault(row["n_gear"], []).append(row["speed"])
    means = [sum(v) / len(v) for _, v in sorted(by_gear.items())]
    assert len(means) == 8
    assert means == sorted(means)
    assert rows[-1]["rpm"] >= 10_000


@pytest.mark.parametrize("collection", ["car_data", "location"])
def test_a_whole_race_of_one_driver_answers_quickly(sandbox: Sandbox, collection: str) -> None:
    started = time.perf_counter()
    response = get(sandbox, "session_key=9488&driver_number=81", collection)  # first request
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(response.json()) > 15_000
    assert elapsed < 3
