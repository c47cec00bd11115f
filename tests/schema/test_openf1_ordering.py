"""`orderBy`, `limit` and `offset` on OpenF1 lists: ordering by any field, nulls last, windows
checked before anything is fetched."""

from __future__ import annotations

from typing import Any

import pytest

from tests._servers import Gateway, Sandbox


def data(result: dict[str, Any]) -> Any:
    assert "errors" not in result, result["errors"]
    return result["data"]


def test_meetings_latest_first(gateway: Gateway) -> None:
    everything = data(gateway.query("{ meetings { meetingKey dateStart } }"))["meetings"]
    newest = sorted(everything, key=lambda m: m["dateStart"], reverse=True)
    result = gateway.query(
        "{ meetings(orderBy: [{field: DATE_START, direction: DESC}], limit: 3, offset: 1) "
        "{ meetingKey dateStart } }"
    )
    assert data(result)["meetings"] == newest[1:4]


def test_several_keys_break_ties_in_order(gateway: Gateway) -> None:
    query = """{ f1Sessions(filter: {year: {eq: 2023}},
                 orderBy: [{field: SESSION_NAME}, {field: DATE_START, direction: DESC}])
               { sessionName dateStart } }"""
    sessions = data(gateway.query(query))["f1Sessions"]
    expected = sorted(sessions, key=lambda s: s["dateStart"], reverse=True)
    expected.sort(key=lambda s: s["sessionName"])
    assert sessions == expected
    assert len(sessions) == 113


def test_a_meetings_sessions_take_a_window(gateway: Gateway) -> None:
    query = """{ meeting(key: 1216) {
      all: sessions { sessionName }
      two: sessions(orderBy: [{field: DATE_START, direction: DESC}], limit: 2) { sessionName }
      rest: sessions(offset: 3) { sessionName } } }"""
    meeting = data(gateway.query(query))["meeting"]
    names = [s["sessionName"] for s in meeting["all"]]
    assert [s["sessionName"] for s in meeting["two"]] == names[::-1][:2]
    assert [s["sessionName"] for s in meeting["rest"]] == names[3:]


def test_per_session_lists_order_by_their_fields(gateway: Gateway) -> None:
    query = """{ f1Session(key: 9839) {
      fastest: laps(orderBy: [{field: LAP_DURATION}], limit: 3) { lapDuration }
      laps { lapDuration lapNumber driverNumber }
      results(orderBy: [{field: POSITION, direction: DESC}]) { position }
      lastMessages: raceControl(orderBy: [{field: DATE, direction: DESC}], limit: 2) { date }
      raceControl { date }
      drivers(orderBy: [{field: NAME_ACRONYM}], limit: 5) { nameAcronym } } }"""
    session = data(gateway.query(query))["f1Session"]
    timed = sorted(lap["lapDuration"] for lap in session["laps"] if lap["lapDuration"])
    assert len(timed) > 1000
    assert [lap["lapDuration"] for lap in session["fastest"]] == timed[:3]
    positions = [r["position"] for r in session["results"]]
    placed = [p for p in positions if p is not None]
    assert placed == sorted(placed, reverse=True)
    assert positions[len(placed) :] == [None] * (len(positions) - len(placed))  # nulls last
    dates = sorted((m["date"] for m in session["raceControl"]), reverse=True)
    assert len(dates) == 107
    assert [m["date"] for m in session["lastMessages"]] == dates[:2]
    acronyms = [d["nameAcronym"] for d in session["drivers"]]
    assert acronyms == sorted(acronyms)
    assert len(acronyms) == 5


def test_nulls_come_last_in_either_direction(gateway: Gateway) -> None:
    query = """{ f1Session(key: 9140) {
      up: results(orderBy: [{field: POSITION}]) { position }
      down: results(orderBy: [{field: POSITION, direction: DESC}]) { position } } }"""
    session = data(gateway.query(query))["f1Session"]
    for results in (session["up"], session["down"]):
        durations = [result["position"] for result in results]
        assert None in durations
        first_null = durations.index(None)
        assert all(d is None for d in durations[first_null:])


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ("limit: -1", "limit"),
        ("limit: 100000", "limit"),
        ("offset: 1000000000", "offset"),
        ("offset: -5", "offset"),
    ],
)
def test_out_of_range_windows_are_refused_before_any_request(
    gateway: Gateway, sandbox: Sandbox, arguments: str, field: str
) -> None:
    for query in (
        f"{{ meetings({arguments}) {{ meetingKey }} }}",
        f"{{ f1Sessions({arguments}) {{ sessionKey }} }}",
        f"{{ meeting(key: 1216) {{ sessions({arguments}) {{ sessionKey }} }} }}",
        f"{{ f1Session(key: 9140) {{ laps({arguments}) {{ lapNumber }} }} }}",
    ):
        result = gateway.query(query)
        (error,) = result["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", query
        assert error["extensions"]["field"] == field
    # The single-object lookups around the lists may ask; the lists themselves never do.
    assert "/v1/laps" not in sandbox.stats("openf1")["by_path"]


@pytest.mark.parametrize(
    "query",
    [
        "{ meetings(orderBy: [{field: NOPE}]) { meetingKey } }",
        "{ meetings(orderBy: [{field: MEETING_KEY, direction: SIDEWAYS}]) { meetingKey } }",
        '{ meetings(orderBy: [{field: "MEETING_KEY"}]) { meetingKey } }',
        "{ f1Session(key: 9140) { laps(orderBy: [{field: SPEED}]) { lapNumber } } }",
    ],
)
def test_unknown_order_fields_are_refused(gateway: Gateway, sandbox: Sandbox, query: str) -> None:
    result = gateway.query(query)
    assert result["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert sandbox.requests("openf1") == 0
