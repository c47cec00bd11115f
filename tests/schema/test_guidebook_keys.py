"""Callers' own Guidebook keys (GUIDEBOOK_CLIENT_KEYS): sent upstream as theirs alone, cached
apart, never shown; writes with one are authorized by Guidebook itself."""

from __future__ import annotations

from typing import Any

import pytest

from tests._servers import MUTATION_TOKEN, Gateway, Sandbox

KEY = "sandbox-guidebook-key"
GUIDES = "{ guides { nodes { guidebookId name } } }"
BOTH = "{ guides { nodes { guidebookId } } meetings(limit: 1) { meetingKey } }"
CREATE_TRACK = """
mutation ($guide: ID!) {
  createScheduleTrack(input: {guideId: $guide, name: "Caller's track"}) {
    scheduleTrack { guidebookId name } userErrors { code message }
  }
}"""


def guide_ids(result: dict[str, Any]) -> list[int]:
    assert "errors" not in result, result["errors"]
    return [g["guidebookId"] for g in result["data"]["guides"]["nodes"]]


def only_error(result: dict[str, Any]) -> dict[str, Any]:
    (error,) = result["errors"]
    return error  # type: ignore[no-any-return]


def test_a_callers_key_is_sent_as_its_own(gateway: Gateway, sandbox: Sandbox) -> None:
    server = guide_ids(gateway.query(GUIDES))
    assert guide_ids(gateway.query(GUIDES, **{"X-Guidebook-Api-Key": KEY})) == server
    wrong = gateway.query(GUIDES, **{"X-Guidebook-Api-Key": "someone-elses-key"})
    error = only_error(wrong)
    assert error["extensions"]["code"] == "UPSTREAM_AUTH_FAILED"
    assert "X-Guidebook-Api-Key" in error["message"]
    assert "someone-elses-key" not in str(wrong)


def test_answers_with_a_callers_key_are_private(gateway: Gateway) -> None:
    response = gateway.post({"query": GUIDES}, **{"X-Guidebook-Api-Key": KEY})
    assert response.status_code == 200
    assert "private" in response.headers["cache-control"]
    assert "X-Guidebook-Api-Key" in response.headers["vary"]


@pytest.mark.parametrize("key", ["", "has space", "x" * 5000, "tab\tinside"])
def test_a_header_that_is_not_a_key_is_refused_unsent(
    gateway: Gateway, sandbox: Sandbox, key: str
) -> None:
    before = sandbox.requests("guidebook")
    result = gateway.post({"query": BOTH}, **{"X-Guidebook-Api-Key": key}).json()
    assert only_error(result)["extensions"]["code"] == "UNAUTHENTICATED"
    assert result["data"]["meetings"]  # the other upstreams still answer
    assert sandbox.requests("guidebook") == before


def test_require_mode_needs_a_key_for_guidebook_fields_only(make_gateway: Any) -> None:
    gateway = make_gateway(guidebook_client_keys="require")
    result = gateway.query(BOTH)
    error = only_error(result)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "X-Guidebook-Api-Key" in error["message"]
    assert result["data"]["guides"] is None
    assert result["data"]["meetings"]
    assert guide_ids(gateway.query(GUIDES, **{"X-Guidebook-Api-Key": KEY}))


def test_off_mode_refuses_a_callers_key(make_gateway: Any) -> None:
    gateway = make_gateway(guidebook_client_keys="off")
    assert guide_ids(gateway.query(GUIDES))
    result = gateway.query(GUIDES, **{"X-Guidebook-Api-Key": KEY})
    assert only_error(result)["extensions"]["code"] == "FORBIDDEN"


def test_without_a_server_key_callers_bring_theirs(make_gateway: Any) -> None:
    gateway = make_gateway(guidebook_api_key=None)
    result = gateway.query(GUIDES)
    error = only_error(result)
    assert error["extensions"]["code"] == "UPSTREAM_NOT_CONFIGURED"
    assert "X-Guidebook-Api-Key" in error["message"]
    assert guide_ids(gateway.query(GUIDES, **{"X-Guidebook-Api-Key": KEY}))
    ready = gateway.http.get("/readyz").json()
    assert KEY not in str(ready)


def test_writes_with_a_callers_key_need_no_gateway_token(gateway: Gateway) -> None:
    guide = guide_ids(gateway.query(GUIDES))[0]
    anonymous = gateway.query(CREATE_TRACK, {"guide": guide})
    assert only_error(anonymous)["extensions"]["code"] == "UNAUTHENTICATED"
    own = gateway.query(CREATE_TRACK, {"guide": guide}, **{"X-Guidebook-Api-Key": KEY})
    assert "errors" not in own, own
    assert own["data"]["createScheduleTrack"]["scheduleTrack"]["name"] == "Caller's track"
    refused = gateway.query(
        CREATE_TRACK, {"guide": guide}, **{"X-Guidebook-Api-Key": "not-a-guidebook-key"}
    )
    assert only_error(refused)["extensions"]["code"] == "UPSTREAM_AUTH_FAILED"
    token = gateway.query(CREATE_TRACK, {"guide": guide}, Authorization=f"Bearer {MUTATION_TOKEN}")
    assert "errors" not in token, token


SECOND_KEY = "sandbox-guidebook-key-second-account"
SESSIONS = "query ($g: Int!) { guidebookSessions(guideId: $g) { edges { node { name } } } }"


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_callers_with_different_keys_never_see_each_others_guides(
    make_gateway: Any, request: pytest.FixtureRequest, backend: str
) -> None:
    cache_url = "memory://" if backend == "memory" else request.getfixturevalue("redis_url")
    # Two gateways on one cache: what one caller's answer stored, the other's must not find.
    first, second = (make_gateway(cache_url=cache_url) for _ in range(2))
    mine = guide_ids(first.query(GUIDES, **{"X-Guidebook-Api-Key": KEY}))
    theirs = guide_ids(second.query(GUIDES, **{"X-Guidebook-Api-Key": SECOND_KEY}))
    assert mine
    assert theirs
    assert not set(mine) & set(theirs)
    for gateway in (first, second):
        # Asked again (now from the caches), each key still gets only its own account's.
        assert guide_ids(gateway.query(GUIDES, **{"X-Guidebook-Api-Key": KEY})) == mine
        assert guide_ids(gateway.query(GUIDES, **{"X-Guidebook-Api-Key": SECOND_KEY})) == theirs
    # One account's guide is not found through the other's key, though cached for the first.
    own = second.query(SESSIONS, {"g": theirs[0]}, **{"X-Guidebook-Api-Key": SECOND_KEY})
    assert own["data"]["guidebookSessions"]["edges"]
    foreign = first.query(SESSIONS, {"g": theirs[0]}, **{"X-Guidebook-Api-Key": KEY})
    assert foreign["data"]["guidebookSessions"] is None
    assert foreign["errors"][0]["extensions"]["code"] == "NOT_FOUND"
