"""The OpenF1 part of the graph end to end: GraphQL over HTTP → gateway → emulator."""

from __future__ import annotations

from typing import Any

from tests._servers import Gateway, Sandbox

SEASON_QUERY = """
{ meetings(filter: {year: {eq: 2023}}) { sessions { sessionName meeting { meetingName } } } }
"""


def data(result: dict[str, Any]) -> Any:
    assert "errors" not in result, result["errors"]
    return result["data"]


def keys(sessions: list[dict[str, Any]]) -> list[int]:
    return [s["sessionKey"] for s in sessions]


def test_season_query_costs_two_upstream_requests(gateway: Gateway, sandbox: Sandbox) -> None:
    meetings = data(gateway.query(SEASON_QUERY))["meetings"]
    assert len(meetings) == 23
    assert sum(len(m["sessions"]) for m in meetings) == 113
    spa = meetings[12]
    assert spa["sessions"][2] == {
        "sessionName": "Sprint Shootout",
        "meeting": {"meetingName": "Belgian Grand Prix"},
    }
    stats = sandbox.stats("openf1")
    assert stats["requests"] == 2
    assert stats["by_path"] == {"/v1/meetings": 1, "/v1/sessions": 1}


def test_without_batching_each_meeting_costs_a_request(make_gateway: Any, sandbox: Sandbox) -> None:
    unbatched = make_gateway(dataloader_batching=False)
    data(unbatched.query(SEASON_QUERY))
    assert sandbox.stats("openf1")["by_path"] == {"/v1/meetings": 1, "/v1/sessions": 23}


def test_session_meetings_are_batched_and_deduplicated(gateway: Gateway, sandbox: Sandbox) -> None:
    result = gateway.query(
        "{ f1Sessions(filter: {year: {eq: 2024}}) { sessionKey meeting { meetingKey year } } }"
    )
    sessions = data(result)["f1Sessions"]
    assert len(sessions) == 123
    assert all(s["meeting"]["year"] == 2024 for s in sessions)
    assert sandbox.stats("openf1")["by_path"] == {"/v1/sessions": 1, "/v1/meetings": 1}


def test_every_meeting_and_session_field_is_served(gateway: Gateway) -> None:
    result = gateway.query(
        """{ meeting(key: 1216) { id meetingKey meetingName meetingOfficialName location
             countryKey countryCode countryName countryFlag circuitKey circuitShortName
             circuitType circuitInfoUrl circuitImage gmtOffset dateStart dateEnd year
             isCancelled }
           f1Session(key: 9140) { id name startsAt endsAt source sessionKey meetingKey
             sessionType sessionName dateStart dateEnd circuitKey circuitShortName countryKey
             countryCode countryName location gmtOffset year isCancelled } }"""
    )
    meeting = data(result)["meeting"]
    assert meeting["meetingName"] == "Belgian Grand Prix"
    assert meeting["countryCode"] == "BEL"
    assert meeting["gmtOffset"] == "02:00:00"
    assert meeting["dateStart"] == "2023-07-28T11:30:00+00:00"
    # Fields the pre-2026 data does not have are null, not errors.
    assert meeting["dateEnd"] is None
    assert meeting["isCancelled"] is None
    session = data(result)["f1Session"]
    assert session["sessionName"] == session["name"] == "Sprint"
    assert session["sessionType"] == "Race"
    assert session["source"] == "OPENF1"
    assert session["startsAt"] == session["dateStart"] == "2023-07-29T15:05:00+00:00"
    assert session["dateEnd"] == "2023-07-29T15:35:00+00:00"
    assert session["id"] != meeting["id"]


def test_equality_on_a_date_like_code_still_finds_monaco(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    result = gateway.query(
        '{ meetings(filter: {countryCode: {eq: "MON"}}) { meetingKey countryCode } }'
    )
    assert [m["meetingKey"] for m in data(result)["meetings"]] == [1210, 1236, 1261]


def test_in_lists_are_ored_and_combined_with_other_fields(gateway: Gateway) -> None:
    result = gateway.query(
        """{ f1Sessions(filter: {sessionKey: {in: [9140, 9141, 9839]},
                                 year: {eq: 2023}}) { sessionKey } }"""
    )
    assert keys(data(result)["f1Sessions"]) == [9140, 9141]


def test_integer_ranges_are_anded(gateway: Gateway) -> None:
    result = gateway.query(
        "{ meetings(filter: {meetingKey: {gte: 1216, lte: 1218}}) { meetingKey } }"
    )
    assert sorted(m["meetingKey"] for m in data(result)["meetings"]) == [1216, 1217, 1218]


def test_contradictory_ranges_are_empty_without_an_upstream_call(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    result = gateway.query("{ meetings(filter: {year: {gt: 2024, lt: 2023}}) { meetingKey } }")
    assert data(result)["meetings"] == []
    assert sandbox.requests("openf1") == 0


def test_a_utc_day_of_sessions(gateway: Gateway) -> None:
    result = gateway.query(
        """{ f1Sessions(filter: {dateStart: {gte: "2023-07-29T00:00:00Z",
                                             lt: "2023-07-30T00:00:00Z"}}) { sessionName } }"""
    )
    names = [s["sessionName"] for s in data(result)["f1Sessions"]]
    assert names == ["Sprint Shootout", "Sprint"]


def test_positive_offsets_reach_the_upstream_intact(gateway: Gateway) -> None:
    # 17:05 at +02:00 is 15:05Z, the Sprint's start: gte keeps it, gt drops it.
    query = """query($op: DateTimeFilter!) {
        f1Sessions(filter: {year: {eq: 2023}, dateStart: $op}) { sessionKey } }"""
    at = "2023-07-29T17:05:00+02:00"
    gte = data(gateway.query(query, {"op": {"gte": at, "lte": at}}))["f1Sessions"]
    gt = data(gateway.query(query, {"op": {"gt": at, "lte": at}}))["f1Sessions"]
    assert keys(gte) == [9140]
    assert gt == []


def test_strings_are_exact_and_case_sensitive(gateway: Gateway) -> None:
    exact = gateway.query('{ meetings(filter: {countryName: {eq: "Belgium"}}) { year } }')
    lower = gateway.query('{ meetings(filter: {countryName: {eq: "belgium"}}) { year } }')
    assert [m["year"] for m in data(exact)["meetings"]] == [2023, 2024, 2025]
    assert data(lower)["meetings"] == []


def test_empty_upstream_results_are_empty_lists(gateway: Gateway) -> None:
    result = gateway.query("{ meetings(filter: {year: {eq: 2031}}) { meetingKey } }")
    assert data(result) == {"meetings": []}


def test_latest_meeting_and_session(gateway: Gateway) -> None:
    result = gateway.query(
        """{ meeting(latest: true) { meetingKey meetingName }
             f1Session(latest: true) { sessionKey sessionName meeting { meetingKey } }
             f1Sessions(filter: {meetingKey: {latest: true}}) { sessionKey } }"""
    )
    payload = data(result)
    assert payload["meeting"] == {"meetingKey": 1276, "meetingName": "Abu Dhabi Grand Prix"}
    assert payload["f1Session"]["sessionKey"] == 9839
    assert payload["f1Session"]["meeting"] == {"meetingKey": 1276}
    assert len(payload["f1Sessions"]) == 5


def test_meeting_sessions_filter(gateway: Gateway, sandbox: Sandbox) -> None:
    result = gateway.query(
        """{ meetings(filter: {year: {eq: 2023}, countryCode: {in: ["BEL", "SGP"]}}) {
               meetingKey sessions(filter: {sessionType: {eq: "Race"}}) { sessionName } } }"""
    )
    meetings = data(result)["meetings"]
    assert [m["meetingKey"] for m in meetings] == [1216, 1219]
    assert meetings[0]["sessions"] == [{"sessionName": "Sprint"}, {"sessionName": "Race"}]
    assert sandbox.requests("openf1") == 2


def test_unknown_key_is_not_found(gateway: Gateway) -> None:
    result = gateway.query("{ meeting(key: 4242) { meetingName } }")
    assert result["data"] == {"meeting": None}
    (error,) = result["errors"]
    assert error["path"] == ["meeting"]
    assert error["extensions"]["code"] == "NOT_FOUND"


def test_key_and_latest_are_exclusive(gateway: Gateway, sandbox: Sandbox) -> None:
    for args in ("", "(key: 1216, latest: true)", "(latest: false)"):
        result = gateway.query(f"{{ f1Session{args} {{ sessionKey }} }}")
        assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", args
    assert sandbox.requests("openf1") == 0


def test_sessions_fetched_alongside_meetings_match_the_plain_path(
    gateway: Gateway, make_gateway: Any, sandbox: Sandbox
) -> None:
    plain = make_gateway(dataloader_batching=False)
    queries = [
        SEASON_QUERY,
        """{ meetings(filter: {countryCode: {eq: "MON"}}) {
               meetingKey sessions(filter: {sessionName: {in: ["Race", "Qualifying"]}}) {
                 sessionKey } } }""",
        """{ meetings(filter: {meetingKey: {latest: true}}) { ...M } }
           fragment M on Meeting { a: sessions { sessionKey } b: sessions(filter: {
             sessionType: {eq: "Race"}}) { sessionName } }""",
        """{ meetings(filter: {meetingName: {eq: "Belgian Grand Prix"}}) {
               sessions(filter: {meetingKey: {eq: 1265}}) { sessionKey } } }""",
        """{ f1Sessions(filter: {year: {eq: 2025}, sessionName: {eq: "Sprint"}}) {
               sessionKey meeting { meetingName } } }""",
    ]
    for query in queries:
        assert data(gateway.query(query)) == data(plain.query(query)), query


def test_sessions_are_requested_together_with_meetings(gateway: Gateway, sandbox: Sandbox) -> None:
    data(gateway.query(SEASON_QUERY))
    # One sessions request filtered like the meetings, not one keyed by their results.
    assert sandbox.stats("openf1")["by_path"] == {"/v1/meetings": 1, "/v1/sessions": 1}
