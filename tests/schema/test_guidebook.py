"""The Guidebook part of the graph end to end: GraphQL over HTTP → gateway → emulator."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sessiongraph.schema.ids import encode_id
from tests._servers import MUTATION_TOKEN, Gateway, Sandbox

CDC, MDS = 58214, 58377
KEYNOTES, WEB, DATA = 301101, 301102, 301103
MDS_TRACK = 301115
BALLROOM_A = 77015
FIRST_SESSION = 4120337
KEY = "sandbox-guidebook-key"
BEARER = {"Authorization": f"Bearer {MUTATION_TOKEN}"}

PAGE_QUERY = """
query ($guide: Int!, $first: Int, $after: String, $order: [GuidebookSessionOrder!],
       $filter: GuidebookSessionFilter) {
  guidebookSessions(guideId: $guide, first: $first, after: $after, orderBy: $order,
                    filter: $filter) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { guidebookId name startTime endTime scheduleTrackIds } }
  }
}"""

CREATE = """
mutation ($input: CreateSessionInput!) {
  createSession(input: $input) {
    session { guidebookId name descriptionHtml startTime endTime importId scheduleTrackIds
              locationIds source scheduleTracks { name } }
    sanitized
    userErrors { field message code }
  }
}"""

UPDATE = """
mutation ($input: UpdateSessionInput!) {
  updateSession(input: $input) {
    session { guidebookId name endTime maxCapacity requireLogin }
    sanitized
    userErrors { field message code }
  }
}"""

DELETE = """
mutation ($id: ID!) {
  deleteSession(input: {id: $id}) { deletedId deletedNodeId userErrors { field code } }
}
"""


def data(result: dict[str, Any]) -> Any:
    assert "errors" not in result, result["errors"]
    return result["data"]


def page(gateway: Gateway, **variables: Any) -> dict[str, Any]:
    variables.setdefault("guide", CDC)
    result: dict[str, Any] = data(gateway.query(PAGE_QUERY, variables))["guidebookSessions"]
    return result


def new_session(**fields: Any) -> dict[str, Any]:
    return {
        "guideId": CDC,
        "name": "Lightning Talks",
        "startTime": "2027-04-20T12:00:00-07:00",
        "endTime": "2027-04-20T13:00:00-07:00",
        **fields,
    }


def create(gateway: Gateway, **fields: Any) -> dict[str, Any]:
    result = gateway.query(CREATE, {"input": new_session(**fields)}, **BEARER)
    payload: dict[str, Any] = data(result)["createSession"]
    return payload


def upstream_sessions(sandbox: Sandbox, **params: Any) -> dict[str, Any]:
    response = httpx.get(
        sandbox.base_url("guidebook") + "/sessions/",
        params={"guide": CDC, **params},
        headers={"Authorization": f"JWT {KEY}"},
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


# --- reads -------------------------------------------------------------------------------------


def test_a_page_with_tracks_locations_and_guide_costs_four_requests(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    result = gateway.query(
        """{ guidebookSessions(guideId: 58214, first: 50) { totalCount edges { node {
               name scheduleTracks { name } locations { name } guide { name } } } } }"""
    )
    sessions = data(result)["guidebookSessions"]
    assert sessions["totalCount"] == 50
    nodes = [edge["node"] for edge in sessions["edges"]]
    assert len(nodes) == 50
    assert {n["guide"]["name"] for n in nodes} == {"Cascadia Developer Conference 2027"}
    keynote = next(n for n in nodes if n["name"].startswith("Opening Keynote"))
    assert keynote["scheduleTracks"] == [{"name": "Keynotes"}]
    assert keynote["locations"] == [{"name": "Ballroom A"}, {"name": "Ballroom B"}]
    assert sandbox.requests("guidebook") <= 4


def test_every_field_is_served(gateway: Gateway) -> None:
    result = gateway.query(
        """{ guide(id: 58214) { id guidebookId createdAt owner name shortName descriptionHtml
               startDate endDate attendeesEstimate timezone homeScreenMenuitem privacy
               redeemCode category
               locations { guidebookId name description locationType latitude longitude
                           address { city zipcode } importId createdAt guide { guidebookId } }
               scheduleTracks { id guidebookId guideId name color importId createdAt } }
             guidebookSession(id: 4120337) { id name startsAt endsAt source guidebookId guideId
               descriptionHtml startTime endTime allDay allowRating addToSchedule importId
               scheduleTrackIds locationIds image rank requireLogin maxCapacity waitlist
               registrationStartDate registrationEndDate createdAt } }"""
    )
    guide = data(result)["guide"]
    assert guide["guidebookId"] == CDC
    assert guide["timezone"] == "US/Pacific"
    assert guide["startDate"] == "2027-04-20T07:00:00+00:00"
    assert guide["category"] == [12]
    venue = guide["locations"][0]
    assert venue["address"]["city"] == "Portland"
    assert venue["guide"] == {"guidebookId": CDC}
    assert [t["guidebookId"] for t in guide["scheduleTracks"]] == list(range(301101, 301108))
    assert guide["scheduleTracks"][0]["color"] == "#1F3A93"
    session = data(result)["guidebookSession"]
    assert session["source"] == "GUIDEBOOK"
    assert session["name"] == "Registration & Breakfast"
    assert session["startsAt"] == session["startTime"] == "2027-04-20T14:30:00+00:00"
    assert session["locationIds"] == [77020]
    assert session["rank"] == 0.0


def test_paging_across_several_upstream_pages(make_gateway: Any, sandbox: Sandbox) -> None:
    # The upstream ignores page_size: pages of 25, so 50 sessions take two upstream pages.
    httpx.post(
        sandbox.root("guidebook") + "/__sandbox/config", json={"honour_page_size": False}
    ).raise_for_status()
    gateway = make_gateway()
    seen: list[int] = []
    after = None
    while True:
        result = page(gateway, first=20, after=after, order=[{"field": "ID"}])
        assert result["totalCount"] == 50
        seen += [edge["node"]["guidebookId"] for edge in result["edges"]]
        if not result["pageInfo"]["hasNextPage"]:
            break
        after = result["pageInfo"]["endCursor"]
    assert len(seen) == 50
    assert seen == sorted(set(seen))
    all_at_once = page(gateway, first=50, order=[{"field": "ID"}])
    assert [e["node"]["guidebookId"] for e in all_at_once["edges"]] == seen
    assert all_at_once["pageInfo"]["hasPreviousPage"] is False


def test_ordering_and_filters(gateway: Gateway) -> None:
    latest_end = page(
        gateway,
        guide=MDS,
        order=[{"field": "END_TIME", "direction": "DESC"}, {"field": "START_TIME"}],
    )
    ends = [e["node"]["endTime"] for e in latest_end["edges"]]
    assert [e for e in ends if e is not None] == sorted(
        (e for e in ends if e is not None), reverse=True
    )
    keynotes = page(gateway, filter={"scheduleTracks": {"eq": KEYNOTES}})
    assert keynotes["totalCount"] == 4
    assert all(KEYNOTES in e["node"]["scheduleTrackIds"] for e in keynotes["edges"])
    either = page(gateway, filter={"scheduleTracks": {"in": [KEYNOTES, DATA]}}, first=5)
    assert either["totalCount"] == 12
    assert len(either["edges"]) == 5
    assert either["pageInfo"]["hasNextPage"] is True
    by_import = page(gateway, filter={"importId": {"eq": "cdc27-s001"}})
    assert [e["node"]["guidebookId"] for e in by_import["edges"]] == [FIRST_SESSION]
    late = page(gateway, filter={"startTime": {"gte": "2027-04-22T00:00:00Z"}})
    assert late["totalCount"] > 0
    assert all(e["node"]["startTime"] >= "2027-04-22" for e in late["edges"])


def test_unknown_ids_are_not_found(gateway: Gateway) -> None:
    result = gateway.query("{ guide(id: 1) { name } scheduleTracks(guideId: 1) { name } }")
    assert result["data"] == {"guide": None, "scheduleTracks": None}
    assert {e["extensions"]["code"] for e in result["errors"]} == {"NOT_FOUND"}


def test_bad_page_arguments(gateway: Gateway) -> None:
    result = gateway.query("{ guides(first: 501) { totalCount } }")
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    result = gateway.query('{ guides(after: "nonsense") { totalCount } }')
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_guides_connection(gateway: Gateway) -> None:
    first = data(
        gateway.query(
            "{ guides(first: 1) { totalCount pageInfo { endCursor } nodes { guidebookId } } }"
        )
    )["guides"]
    assert first["totalCount"] == 2
    assert first["nodes"] == [{"guidebookId": CDC}]
    after = first["pageInfo"]["endCursor"]
    rest = data(gateway.query(f'{{ guides(after: "{after}") {{ nodes {{ guidebookId }} }} }}'))
    assert rest["guides"]["nodes"] == [{"guidebookId": MDS}]


def test_track_sessions(gateway: Gateway, sandbox: Sandbox) -> None:
    result = gateway.query("{ scheduleTracks(guideId: 58214) { name sessions { name } } }")
    tracks = data(result)["scheduleTracks"]
    assert len(tracks) == 7
    assert len(tracks[0]["sessions"]) == 4
    # Every track's sessions come from one listing of the guide's sessions.
    assert sandbox.stats("guidebook")["by_path"]["/open-api/v1/sessions/"] == 1


# --- errors --------------------------------------------------------------------------------------


def test_not_configured(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(guidebook_api_key=None)
    result = gateway.query("{ guide(id: 58214) { name } }")
    assert result["errors"][0]["extensions"]["code"] == "UPSTREAM_NOT_CONFIGURED"
    result = gateway.query(CREATE, {"input": new_session()}, **BEARER)
    assert result["errors"][0]["extensions"]["code"] == "UPSTREAM_NOT_CONFIGURED"
    assert sandbox.requests("guidebook") == 0


def test_upstream_5xx_leaves_openf1_fields_answering(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(retry_attempts=1)
    sandbox.faults("guidebook", error_rate=1.0, error_status=503)
    result = gateway.query(
        "{ meeting(key: 1216) { meetingName } guide(id: 58214) { name } "
        "guidebookSessions(guideId: 58214) { totalCount } }"
    )
    assert result["data"]["meeting"] == {"meetingName": "Belgian Grand Prix"}
    assert result["data"]["guide"] is None
    assert result["data"]["guidebookSessions"] is None
    for error in result["errors"]:
        assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert error["extensions"]["upstream"] == "guidebook"
        assert error["extensions"]["status"] == 503


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "UPSTREAM_AUTH_FAILED"),
        (403, "UPSTREAM_AUTH_FAILED"),
        (405, "UPSTREAM_REJECTED"),
        (429, "UPSTREAM_RATE_LIMITED"),
    ],
)
def test_upstream_statuses_are_coded(
    make_gateway: Any, sandbox: Sandbox, status: int, code: str
) -> None:
    gateway = make_gateway(retry_attempts=0)
    sandbox.faults("guidebook", error_rate=1.0, error_status=status, retry_after=60)
    result = gateway.query("{ guides { totalCount } }")
    (error,) = result["errors"]
    assert error["extensions"]["code"] == code
    assert error["extensions"]["status"] == status
    assert KEY not in str(result)


def test_wrong_api_key_never_leaks(make_gateway: Any) -> None:
    gateway = make_gateway(guidebook_api_key="wrong-secret-key")
    result = gateway.query("{ guides { totalCount } }")
    assert result["errors"][0]["extensions"]["code"] == "UPSTREAM_AUTH_FAILED"
    assert "wrong-secret-key" not in str(result)
    assert "wrong-secret-key" not in gateway.http.get("/readyz").text


# --- mutations ---------------------------------------------------------------------------------


def test_create_read_update_delete_round_trip(gateway: Gateway, sandbox: Sandbox) -> None:
    created = create(
        gateway,
        descriptionHtml="<p>Five minutes each</p>",
        scheduleTrackIds=[WEB, DATA],
        locationIds=[BALLROOM_A],
        importId="round-trip-1",
    )
    assert created["userErrors"] == []
    assert created["sanitized"] is False
    session = created["session"]
    assert session["startTime"] == "2027-04-20T19:00:00+00:00"
    assert session["scheduleTracks"] == [{"name": "Web & APIs"}, {"name": "Data & ML"}]
    assert session["source"] == "GUIDEBOOK"
    new_id = session["guidebookId"]

    read = data(gateway.query(f"{{ guidebookSession(id: {new_id}) {{ name importId }} }}"))
    assert read["guidebookSession"] == {"name": "Lightning Talks", "importId": "round-trip-1"}

    updated = data(
        gateway.query(
            UPDATE, {"input": {"id": new_id, "endTime": "2027-04-20T21:30:00Z"}}, **BEARER
        )
    )["updateSession"]
    assert updated["userErrors"] == []
    assert updated["session"]["name"] == "Lightning Talks"  # untouched by the PATCH
    assert updated["session"]["endTime"] == "2027-04-20T21:30:00+00:00"

    deleted = data(gateway.query(DELETE, {"id": new_id}, **BEARER))["deleteSession"]
    assert deleted == {
        "deletedId": new_id,
        "deletedNodeId": encode_id("GuidebookSession", new_id),
        "userErrors": [],
    }
    gone = gateway.query(f"{{ guidebookSession(id: {new_id}) {{ name }} }}")
    assert gone["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    again = data(gateway.query(DELETE, {"id": new_id}, **BEARER))["deleteSession"]
    assert again == {
        "deletedId": None,
        "deletedNodeId": None,
        "userErrors": [{"field": "id", "code": "NOT_FOUND"}],
    }


def test_created_sessions_get_an_import_id(gateway: Gateway) -> None:
    session = create(gateway)["session"]
    assert session["importId"].startswith("sessiongraph-")


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"name": "  "}, "name", "BAD_USER_INPUT"),
        ({"descriptionHtml": "x" * 20_001}, "descriptionHtml", "BAD_USER_INPUT"),
        ({"endTime": "2027-04-20T11:00:00-07:00"}, "endTime", "BAD_USER_INPUT"),
        ({"guideId": 1}, "guideId", "NOT_FOUND"),
        ({"scheduleTrackIds": [MDS_TRACK]}, "scheduleTrackIds", "NOT_FOUND"),
        ({"locationIds": [1]}, "locationIds", "NOT_FOUND"),
        ({"requireLogin": True, "addToSchedule": False}, "requireLogin", "BAD_USER_INPUT"),
        ({"maxCapacity": 10}, "maxCapacity", "BAD_USER_INPUT"),
        ({"maxCapacity": -1, "requireLogin": True}, "maxCapacity", "BAD_USER_INPUT"),
        ({"waitlist": True}, "waitlist", "BAD_USER_INPUT"),
        (
            {"registrationStartDate": "2027-01-01T00:00:00Z"},
            "registrationStartDate",
            "BAD_USER_INPUT",
        ),
        (
            {
                "requireLogin": True,
                "registrationStartDate": "2027-02-01T00:00:00Z",
                "registrationEndDate": "2027-01-01T00:00:00Z",
            },
            "registrationEndDate",
            "BAD_USER_INPUT",
        ),
    ],
)
def test_invalid_creates_send_nothing(
    gateway: Gateway, sandbox: Sandbox, fields: dict[str, Any], field: str, code: str
) -> None:
    payload = create(gateway, **fields)
    assert payload["session"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, code)]
    assert "POST /open-api/v1/sessions/" not in sandbox.stats("guidebook")["by_method_path"]


def test_update_is_validated_against_the_stored_session(gateway: Gateway, sandbox: Sandbox) -> None:
    early = {"id": FIRST_SESSION, "endTime": "2027-04-20T14:00:00Z"}
    payload = data(gateway.query(UPDATE, {"input": early}, **BEARER))["updateSession"]
    assert [e["field"] for e in payload["userErrors"]] == ["endTime"]
    missing = {"id": 1, "name": "x"}
    payload = data(gateway.query(UPDATE, {"input": missing}, **BEARER))["updateSession"]
    assert payload["userErrors"] == [
        {"field": "id", "message": "no Guidebook session 1", "code": "NOT_FOUND"}
    ]
    assert not any(k.startswith("PATCH") for k in sandbox.stats("guidebook")["by_method_path"])


def test_upstream_field_errors_become_user_errors(gateway: Gateway) -> None:
    # A rule only Guidebook knows (one passphrase change per hour) comes back as a 400 field list.
    mutation = """mutation ($code: String!) { updateGuide(input: {id: 58377, redeemCode: $code}) {
        guide { redeemCode } userErrors { field message code } } }"""
    first = data(gateway.query(mutation, {"code": "pitwall"}, **BEARER))["updateGuide"]
    # The passphrase may be write-only upstream (reference: "treat as optional").
    assert first["userErrors"] == []
    second = data(gateway.query(mutation, {"code": "again"}, **BEARER))["updateGuide"]
    assert second["guide"] is None
    assert second["userErrors"] == [
        {
            "field": "redeemCode",
            "message": "The passphrase can only be changed once per hour.",
            "code": "BAD_USER_INPUT",
        }
    ]


def test_description_is_sanitized(gateway: Gateway, sandbox: Sandbox) -> None:
    payload = create(
        gateway,
        descriptionHtml='<p onclick="steal()">Hi <script>alert(1)</script><b>there</b></p>',
    )
    assert payload["sanitized"] is True
    assert payload["session"]["descriptionHtml"] == "<p>Hi <b>there</b></p>"
    clean = create(gateway, descriptionHtml='<p>Fine <a href="https://x.org">link</a></p>')
    assert clean["sanitized"] is False


def test_lost_create_answer_leaves_exactly_one_session(gateway: Gateway, sandbox: Sandbox) -> None:
    sandbox.faults("guidebook", drop_rate=1.0, drop_phase="after", methods=["POST"])
    payload = create(gateway, importId="lost-answer-1")
    assert payload["userErrors"] == []
    assert payload["session"]["importId"] == "lost-answer-1"
    assert upstream_sessions(sandbox, import_id="lost-answer-1")["count"] == 1
    assert sandbox.stats("guidebook")["by_method_path"]["POST /open-api/v1/sessions/"] == 1


def test_lost_create_without_import_id_is_found_by_the_generated_one(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    sandbox.faults("guidebook", drop_rate=1.0, drop_phase="after", methods=["POST"])
    payload = create(gateway, name="Unkeyed")
    generated = payload["session"]["importId"]
    sandbox.faults("guidebook")
    assert upstream_sessions(sandbox, import_id=generated)["count"] == 1


def test_a_create_dropped_before_it_arrived_is_sent_once_more(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    sandbox.faults("guidebook", drop_rate=1.0, drop_phase="before", methods=["POST"])
    result = gateway.query(CREATE, {"input": new_session(importId="never-1")}, **BEARER)
    assert result["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert result["errors"][0]["extensions"]["importId"] == "never-1"
    # Once, a look-up, once more after the look-up proved it absent; never a third time.
    assert sandbox.stats("guidebook")["by_method_path"]["POST /open-api/v1/sessions/"] == 2
    sandbox.faults("guidebook")
    assert upstream_sessions(sandbox, import_id="never-1")["count"] == 0


SESSIONS_PATH = "/open-api/v1/sessions/"
TRACKS_PATH = "/open-api/v1/schedule-tracks/"
CREATE_TRACK = """
mutation ($input: CreateScheduleTrackInput!) {
  createScheduleTrack(input: $input) { scheduleTrack { guidebookId importId } userErrors { code } }
}"""


def lose_writes_and_lookups(sandbox: Sandbox, path: str) -> None:
    """Every write lands but its answer is lost, and so is every look-up that follows."""
    sandbox.faults(
        "guidebook", drop_rate=1.0, drop_phase="after", methods=["POST", "GET"], path_prefix=path
    )


def upstream_count(sandbox: Sandbox, collection: str, import_id: str) -> int:
    response = httpx.get(
        sandbox.base_url("guidebook") + f"/{collection}/",
        params={"guide": CDC, "import_id": import_id},
        headers={"Authorization": f"JWT {KEY}"},
    )
    response.raise_for_status()
    return int(response.json()["count"])


def test_a_create_whose_look_up_fails_too_reports_an_unknown_outcome(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    lose_writes_and_lookups(sandbox, SESSIONS_PATH)
    result = gateway.query(CREATE, {"input": new_session()}, **BEARER)
    (error,) = result["errors"]
    assert error["path"] == ["createSession"]
    extensions = error["extensions"]
    assert (extensions["code"], extensions["outcome"]) == ("UPSTREAM_UNAVAILABLE", "UNKNOWN")
    key = extensions["importId"]
    assert key.startswith("sessiongraph-")
    assert key in error["message"]
    stats = sandbox.stats("guidebook")["by_method_path"]
    assert stats[f"POST {SESSIONS_PATH}"] == 1  # never resent while the outcome is unknown
    assert stats[f"GET {SESSIONS_PATH}"] >= 3  # the look-up had retries of its own
    sandbox.faults("guidebook")
    assert upstream_count(sandbox, "sessions", key) == 1
    # The client retries with the key it was given: the session is found, nothing is sent.
    retried = create(gateway, importId=key)
    assert retried["userErrors"] == []
    assert retried["session"]["importId"] == key
    assert upstream_count(sandbox, "sessions", key) == 1
    assert sandbox.stats("guidebook")["by_method_path"][f"POST {SESSIONS_PATH}"] == 1


def test_a_create_with_a_chosen_import_id_sends_nothing_when_it_cannot_check_first(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    lose_writes_and_lookups(sandbox, SESSIONS_PATH)
    result = gateway.query(CREATE, {"input": new_session(importId="chosen-1")}, **BEARER)
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert "outcome" not in error["extensions"]  # nothing was written
    assert f"POST {SESSIONS_PATH}" not in sandbox.stats("guidebook")["by_method_path"]
    sandbox.faults("guidebook")
    assert create(gateway, importId="chosen-1")["session"]["importId"] == "chosen-1"
    assert create(gateway, importId="chosen-1")["session"]["importId"] == "chosen-1"
    assert upstream_count(sandbox, "sessions", "chosen-1") == 1


def test_a_track_create_whose_look_up_fails_too_reports_an_unknown_outcome(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    lose_writes_and_lookups(sandbox, TRACKS_PATH)
    variables: dict[str, Any] = {"input": {"guideId": CDC, "name": "Robotics"}}
    (error,) = gateway.query(CREATE_TRACK, variables, **BEARER)["errors"]
    assert error["extensions"]["outcome"] == "UNKNOWN"
    key = error["extensions"]["importId"]
    sandbox.faults("guidebook")
    variables["input"]["importId"] = key
    again = data(gateway.query(CREATE_TRACK, variables, **BEARER))["createScheduleTrack"]
    assert again["scheduleTrack"]["importId"] == key
    assert upstream_count(sandbox, "schedule-tracks", key) == 1


def test_a_lost_track_create_answer_is_found_by_its_import_id(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    sandbox.faults("guidebook", drop_rate=1.0, drop_phase="after", methods=["POST"])
    variables = {"input": {"guideId": CDC, "name": "Quantum"}}
    created = data(gateway.query(CREATE_TRACK, variables, **BEARER))["createScheduleTrack"]
    generated = created["scheduleTrack"]["importId"]
    assert generated.startswith("sessiongraph-")
    sandbox.faults("guidebook")
    assert upstream_count(sandbox, "schedule-tracks", generated) == 1


def test_an_update_whose_answer_is_lost_is_never_resent(gateway: Gateway, sandbox: Sandbox) -> None:
    session_id = create(gateway, importId="update-lost-1")["session"]["guidebookId"]
    sandbox.faults("guidebook", drop_rate=1.0, drop_phase="after", methods=["PATCH"])
    result = gateway.query(UPDATE, {"input": {"id": session_id, "name": "Renamed"}}, **BEARER)
    (error,) = result["errors"]
    assert error["extensions"]["outcome"] == "UNKNOWN"
    assert sandbox.stats("guidebook")["by_method_path"][f"PATCH {SESSIONS_PATH}{session_id}/"] == 1
    sandbox.faults("guidebook")
    assert upstream_sessions(sandbox, import_id="update-lost-1")["results"][0]["name"] == "Renamed"


def test_a_delete_whose_answer_is_lost_succeeds_once_the_session_is_gone(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    session_id = create(gateway, importId="delete-lost-1")["session"]["guidebookId"]
    sandbox.faults("guidebook", drop_rate=1.0, drop_phase="after", methods=["DELETE"])
    deleted = data(gateway.query(DELETE, {"id": session_id}, **BEARER))["deleteSession"]
    assert deleted == {
        "deletedId": session_id,
        "deletedNodeId": encode_id("GuidebookSession", session_id),
        "userErrors": [],
    }
    sandbox.faults("guidebook")
    assert upstream_sessions(sandbox, import_id="delete-lost-1")["count"] == 0


def test_a_delete_whose_answer_and_check_are_lost_reports_an_unknown_outcome(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    session_id = create(gateway, importId="delete-lost-2")["session"]["guidebookId"]
    sandbox.faults(
        "guidebook",
        drop_rate=1.0,
        drop_phase="after",
        methods=["DELETE", "GET"],
        path_prefix=f"{SESSIONS_PATH}{session_id}/",
    )
    (error,) = gateway.query(DELETE, {"id": session_id}, **BEARER)["errors"]
    assert error["extensions"]["outcome"] == "UNKNOWN"
    assert sandbox.stats("guidebook")["by_method_path"][f"DELETE {SESSIONS_PATH}{session_id}/"] == 1


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "UNAUTHENTICATED"),
        ({"Authorization": "Basic abc"}, "UNAUTHENTICATED"),
        ({"Authorization": "Bearer not-the-token"}, "FORBIDDEN"),
    ],
)
def test_mutations_need_the_token(
    gateway: Gateway, sandbox: Sandbox, headers: dict[str, str], code: str
) -> None:
    for mutation, variables in (
        (CREATE, {"input": new_session()}),
        (DELETE, {"id": FIRST_SESSION}),
        ('mutation { updateGuide(input: {id: 58214, name: "x"}) { userErrors { code } } }', {}),
    ):
        result = gateway.query(mutation, variables, **headers)
        assert result["errors"][0]["extensions"]["code"] == code
    assert sandbox.requests("guidebook") == 0


def test_without_configured_hashes_mutations_are_refused(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(api_token_hashes=[])
    result = gateway.query(DELETE, {"id": FIRST_SESSION}, **BEARER)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert sandbox.requests("guidebook") == 0


def test_queries_can_require_the_token(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(require_token_for_queries=True)
    refused = gateway.query("{ guides { totalCount } }")
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert sandbox.requests("guidebook") == 0
    allowed = gateway.query("{ guides { totalCount } }", **BEARER)
    assert data(allowed)["guides"]["totalCount"] == 2


def test_schedule_track_mutations(gateway: Gateway) -> None:
    bad = gateway.query(
        'mutation { createScheduleTrack(input: {guideId: 58214, name: "Hardware", '
        'color: "blue"}) { scheduleTrack { name } userErrors { field code } } }',
        **BEARER,
    )
    assert data(bad)["createScheduleTrack"] == {
        "scheduleTrack": None,
        "userErrors": [{"field": "color", "code": "BAD_USER_INPUT"}],
    }
    created = data(
        gateway.query(
            'mutation { createScheduleTrack(input: {guideId: 58214, name: "Hardware", '
            'color: "#00FF7F"}) { scheduleTrack { guidebookId color guide { guidebookId } } '
            "userErrors { field } } }",
            **BEARER,
        )
    )["createScheduleTrack"]
    track = created["scheduleTrack"]
    assert (track["color"], track["guide"]) == ("#00FF7F", {"guidebookId": CDC})
    renamed = data(
        gateway.query(
            f"mutation {{ updateScheduleTrack(input: {{id: {track['guidebookId']}, "
            'name: "Hardware & IoT", color: null}) { scheduleTrack { name color } } }',
            **BEARER,
        )
    )["updateScheduleTrack"]
    assert renamed["scheduleTrack"] == {"name": "Hardware & IoT", "color": None}
    deleted = data(
        gateway.query(
            f"mutation {{ deleteScheduleTrack(input: {{id: {track['guidebookId']}}}) "
            "{ deletedId userErrors { code } } }",
            **BEARER,
        )
    )["deleteScheduleTrack"]
    assert deleted == {"deletedId": track["guidebookId"], "userErrors": []}


def test_update_guide(gateway: Gateway, sandbox: Sandbox) -> None:
    mutation = """mutation ($input: UpdateGuideInput!) { updateGuide(input: $input) {
        guide { name timezone privacy } sanitized userErrors { field code } } }"""
    bad = data(
        gateway.query(
            mutation,
            {"input": {"id": MDS, "timezone": "Mars/Olympus", "privacy": 9, "name": ""}},
            **BEARER,
        )
    )["updateGuide"]
    assert {e["field"] for e in bad["userErrors"]} == {"timezone", "privacy", "name"}
    assert not any(k.startswith("PATCH") for k in sandbox.stats("guidebook")["by_method_path"])
    good = data(
        gateway.query(
            mutation, {"input": {"id": MDS, "name": "MDS 2027", "timezone": "UTC"}}, **BEARER
        )
    )["updateGuide"]
    assert good["guide"] == {"name": "MDS 2027", "timezone": "UTC", "privacy": 2}
    assert good["userErrors"] == []


def test_inputs_take_global_ids_and_deletes_name_the_node(gateway: Gateway) -> None:
    created = create(
        gateway,
        guideId=encode_id("Guide", CDC),
        scheduleTrackIds=[encode_id("ScheduleTrack", KEYNOTES), WEB],
        locationIds=[encode_id("Location", BALLROOM_A)],
    )
    assert created["userErrors"] == []
    session = created["session"]
    assert session["scheduleTrackIds"] == [KEYNOTES, WEB]
    node_id = encode_id("GuidebookSession", session["guidebookId"])
    renamed = data(
        gateway.query(UPDATE, {"input": {"id": node_id, "name": "By global id"}}, **BEARER)
    )["updateSession"]
    assert renamed["session"]["name"] == "By global id"
    deleted = data(gateway.query(DELETE, {"id": node_id}, **BEARER))["deleteSession"]
    assert deleted == {
        "deletedId": session["guidebookId"],
        "deletedNodeId": node_id,
        "userErrors": [],
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"guideId": "not an id"}, "guideId"),
        ({"guideId": "TWVldGluZzoxMjE2"}, "guideId"),  # a Meeting's global ID
        ({"scheduleTrackIds": [WEB, "R3VpZGU6NTgyMTQ="]}, "scheduleTrackIds"),  # a Guide's
        ({"locationIds": ["-1"]}, "locationIds"),
        ({"guideId": "9" * 5000}, "guideId"),
    ],
)
def test_bad_ids_in_inputs_are_user_errors(
    gateway: Gateway, sandbox: Sandbox, fields: dict[str, Any], field: str
) -> None:
    result = gateway.query(CREATE, {"input": new_session(**fields)}, **BEARER)
    payload = data(result)["createSession"]
    assert payload["session"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, "BAD_USER_INPUT")]
    for junk in ("nope", "R3VpZGU6NTgyMTQ="):
        deleted = data(gateway.query(DELETE, {"id": junk}, **BEARER))["deleteSession"]
        assert deleted["userErrors"] == [{"field": "id", "code": "BAD_USER_INPUT"}]
    assert "POST /open-api/v1/sessions/" not in sandbox.stats("guidebook")["by_method_path"]
    assert not any(k.startswith("DELETE") for k in sandbox.stats("guidebook")["by_method_path"])


def test_bad_ids_do_not_hide_a_missing_credential(gateway: Gateway) -> None:
    result = gateway.query(DELETE, {"id": "nope"})
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
