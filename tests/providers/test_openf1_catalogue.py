"""The OpenF1 catalogue: the same answers as asking OpenF1, from two upstream requests; refresh
by data age, `latest` around a session start, outages while warm and while cold."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from tests._servers import Gateway, Sandbox

# Every kind of lookup and filter the schema offers over meetings and sessions.
QUESTIONS = [
    "{ meetings(filter: {year: {eq: 2023}}) { meetingKey meetingName sessions { sessionName } } }",
    '{ meetings(filter: {year: {in: [2024, 2025]}, countryName: {eq: "Italy"}}) '
    "{ meetingKey location } }",
    '{ meetings(filter: {countryCode: {in: ["MON", "BEL"]}}) { meetingKey } }',
    '{ meetings(filter: {dateStart: {gte: "2024-06-01T00:00:00Z", lt: "2024-09-01T00:00:00Z"}}) '
    "{ meetingKey } }",
    "{ meetings(filter: {meetingKey: {gt: 1250}, year: {lte: 2024}}) { meetingKey } }",
    "{ meetings(filter: {year: {gt: 2025, lt: 2023}}) { meetingKey } }",
    '{ f1Sessions(filter: {sessionName: {eq: "Race"}, year: {eq: 2024}}) '
    "{ sessionKey dateStart meeting { meetingName } } }",
    '{ f1Sessions(filter: {sessionType: {eq: "Qualifying"}, '
    'circuitShortName: {eq: "Spa-Francorchamps"}}) { sessionKey sessionName } }',
    "{ f1Sessions(filter: {sessionKey: {in: [9140, 9141, 1]}}) { sessionKey } }",
    '{ meeting(key: 1216) { meetingName sessions(filter: {sessionType: {eq: "Race"}}) '
    "{ sessionName } } }",
    "{ meeting(key: 424242) { meetingName } }",
    "{ f1Session(key: 9140) { sessionName meeting { meetingOfficialName } } }",
    "{ meeting(latest: true) { meetingKey } f1Session(latest: true) { sessionKey } }",
    "{ f1Sessions(filter: {sessionKey: {latest: true}}) { sessionKey } }",
    "{ meetings(filter: {meetingKey: {latest: true}}) { meetingKey } }",
    '{ nodes(ids: ["TWVldGluZzoxMjE2", "RjFTZXNzaW9uOjkxNDA="]) { id } }',
    '{ _entities(representations: [{__typename: "Meeting", meetingKey: 1219}]) '
    "{ ... on Meeting { meetingName } } }",
    '{ sessions(from: "2023-07-28T00:00:00Z", to: "2023-07-31T00:00:00Z", sources: [OPENF1]) '
    "{ totalCount nodes { name startsAt } } }",
]


def catalogue_gateway(make_gateway: Any, **settings: Any) -> Gateway:
    gateway: Gateway = make_gateway(openf1_catalogue=True, **settings)
    return gateway


def openf1_paths(sandbox: Sandbox) -> dict[str, int]:
    paths: dict[str, int] = sandbox.stats("openf1")["by_path"]
    return paths


def test_every_question_gets_the_same_answer_from_two_requests(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    asking = make_gateway()  # today's behaviour: every lookup asks OpenF1
    expected = [asking.query(q) for q in QUESTIONS]
    sandbox.reset("openf1")
    gateway = catalogue_gateway(make_gateway)
    for question, answer in zip(QUESTIONS, expected, strict=True):
        assert gateway.query(question) == answer, question
    assert openf1_paths(sandbox) == {"/v1/meetings": 1, "/v1/sessions": 1}


def test_readyz_and_metrics_show_the_catalogue(make_gateway: Any) -> None:
    gateway = catalogue_gateway(make_gateway)
    assert gateway.http.get("/readyz").json()["openf1Catalogue"] == {
        "loaded": False,
        "refreshes": 0,
        "failedRefreshes": 0,
    }
    gateway.query("{ meeting(key: 1216) { year } }")
    status = gateway.http.get("/readyz").json()["openf1Catalogue"]
    assert (status["meetings"], status["sessions"], status["refreshes"]) == (73, 359, 1)
    assert status["ageSeconds"] < 60
    # Nothing of 2026 is in the data: fresh until the next daily refresh, at most 6 h.
    assert 0 < status["freshForSeconds"] <= 6 * 3600
    metrics = gateway.http.get("/metrics").text
    assert 'sessiongraph_openf1_catalogue_entries{kind="sessions"} 359.0' in metrics
    assert "sessiongraph_openf1_catalogue_age_seconds" in metrics


def iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def upcoming_session(key: int, start: datetime, **fields: Any) -> dict[str, Any]:
    """A synthetic session of meeting 1276 (Abu Dhabi 2025), for the emulator to serve."""
    return {
        "meeting_key": 1276,
        "session_key": key,
        "location": "Yas Island",
        "date_start": iso(start),
        "date_end": iso(start + timedelta(hours=1)),
        "session_type": "Practice",
        "session_name": "Practice 9",
        "country_key": 21,
        "country_code": "UAE",
        "country_name": "United Arab Emirates",
        "circuit_key": 70,
        "circuit_short_name": "Yas Marina Circuit",
        "gmt_offset": "04:00:00",
        "year": start.year,
        **fields,
    }


def set_sessions(sandbox: Sandbox, *rows: dict[str, Any]) -> None:
    sandbox.http.post(
        sandbox.root("openf1") + "/__sandbox/openf1/rows",
        json={"collection": "sessions", "rows": list(rows)},
    ).raise_for_status()


def test_an_upcoming_session_that_moves_or_is_cancelled_shows_after_the_refresh(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    start = datetime.now(UTC) + timedelta(hours=5)
    set_sessions(sandbox, upcoming_session(99001, start))
    # A session within a day: the catalogue is "live", fresh for CACHE_TTL_OPENF1_RECENT.
    gateway = catalogue_gateway(make_gateway, cache_ttl_openf1_recent_seconds=1)
    question = "{ f1Session(key: 99001) { dateStart isCancelled } }"
    assert gateway.query(question)["data"]["f1Session"]["dateStart"] == iso(start)
    moved = start + timedelta(hours=2)
    set_sessions(sandbox, upcoming_session(99001, moved, is_cancelled=True))
    assert gateway.query(question)["data"]["f1Session"]["dateStart"] == iso(start)  # still fresh
    time.sleep(1.2)
    refreshed = gateway.query(question)["data"]["f1Session"]
    assert refreshed == {"dateStart": iso(moved), "isCancelled": True}
    assert openf1_paths(sandbox) == {"/v1/meetings": 2, "/v1/sessions": 2}


def test_latest_is_resolved_locally_unless_a_session_is_starting(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    now = datetime.now(UTC)
    set_sessions(sandbox, upcoming_session(99002, now - timedelta(hours=2)))
    gateway = catalogue_gateway(make_gateway)
    latest = "{ f1Session(latest: true) { sessionKey } }"
    assert gateway.query(latest) == {"data": {"f1Session": {"sessionKey": 99002}}}
    assert openf1_paths(sandbox) == {"/v1/meetings": 1, "/v1/sessions": 1}
    # A session starting right now: only OpenF1 knows whether it counts as started.
    set_sessions(sandbox, upcoming_session(99003, now + timedelta(seconds=30)))
    starting = catalogue_gateway(make_gateway)
    answer = starting.query(latest)["data"]["f1Session"]["sessionKey"]
    assert answer == 99003  # OpenF1 counts sessions starting within 60 s
    assert openf1_paths(sandbox)["/v1/sessions"] == 3  # the catalogue's and one `latest`


@pytest.mark.parametrize(
    "fault",
    [
        {"error_rate": 1.0, "error_status": 503},
        {"error_rate": 1.0, "error_status": 429},
        {"drop_rate": 1.0},
        "live",
    ],
)
def test_a_warm_catalogue_keeps_answering_while_openf1_fails(
    make_gateway: Any, sandbox: Sandbox, fault: Any
) -> None:
    gateway = catalogue_gateway(
        make_gateway,
        retry_attempts=0,
        cache_ttl_openf1_recent_seconds=0.5,
        cache_ttl_openf1_settled_seconds=0.5,
    )
    question = "{ meetings(filter: {year: {eq: 2024}}) { meetingKey sessions { sessionKey } } }"
    fresh = gateway.query(question)
    if fault == "live":
        sandbox.http.post(
            sandbox.root("openf1") + "/__sandbox/openf1/live", json={"active": True}
        ).raise_for_status()
    else:
        sandbox.faults("openf1", **fault)
    time.sleep(0.6)
    for _ in range(3):
        stale = gateway.query(question)
        assert stale["data"] == fresh["data"]
        (warning,) = stale["extensions"]["warnings"]
        assert (warning["code"], warning["upstream"]) == ("STALE_DATA", "openf1")
    # One failed refresh, then a pause: not one upstream attempt per question.
    assert sum(openf1_paths(sandbox).values()) <= 2 + 2
    assert gateway.http.get("/readyz").json()["openf1Catalogue"]["failedRefreshes"] == 1


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"error_rate": 1.0, "error_status": 503}, "UPSTREAM_UNAVAILABLE"),
        ({"error_rate": 1.0, "error_status": 429}, "UPSTREAM_RATE_LIMITED"),
        ({"drop_rate": 1.0}, "UPSTREAM_UNAVAILABLE"),
        ("live", "UPSTREAM_AUTH_FAILED"),
    ],
)
def test_a_cold_catalogue_reports_the_outage(
    make_gateway: Any, sandbox: Sandbox, fault: Any, code: str
) -> None:
    gateway = catalogue_gateway(make_gateway, retry_attempts=0)
    if fault == "live":
        sandbox.http.post(
            sandbox.root("openf1") + "/__sandbox/openf1/live", json={"active": True}
        ).raise_for_status()
    else:
        sandbox.faults("openf1", **fault)
    result = gateway.query("{ meeting(key: 1216) { meetingName } guide(id: 58214) { name } }")
    assert result["data"]["meeting"] is None
    assert result["data"]["guide"] == {"name": "Cascadia Developer Conference 2027"}
    assert [e["extensions"]["code"] for e in result["errors"]] == [code]


def test_workers_sharing_redis_load_it_once(
    make_gateway: Any, sandbox: Sandbox, redis_url: str
) -> None:
    redis.Redis.from_url(redis_url).flushdb()  # nothing from other tests' gateways
    first = catalogue_gateway(make_gateway, cache_url=redis_url)
    second = catalogue_gateway(make_gateway, cache_url=redis_url)
    question = "{ meetings(filter: {year: {eq: 2025}}) { meetingKey } }"
    assert first.query(question) == second.query(question)
    assert openf1_paths(sandbox) == {"/v1/meetings": 1, "/v1/sessions": 1}


def test_data_of_settled_sessions_is_kept_for_hours(make_gateway: Any) -> None:
    question = "{ f1Session(key: 9140) { results { position } } }"

    def max_age(gateway: Gateway) -> int:
        control = gateway.http.get("/graphql", params={"query": question}).headers["cache-control"]
        return int(control.rsplit("max-age=", 1)[1])

    # Results carry no dates: only the catalogue knows the session ended in 2023. It is kept
    # for hours, but never past OpenF1's daily rebuild at 00:00 UTC (and a grace of 10 min).
    now = datetime.now(UTC)
    rebuild = (now + timedelta(days=1)).replace(hour=0, minute=10, second=0, microsecond=0)
    hours = min(3600.0, (rebuild - now).total_seconds())
    assert max_age(catalogue_gateway(make_gateway, http_max_age_seconds=86400)) >= hours - 60
    assert max_age(make_gateway(http_max_age_seconds=86400)) <= 300
