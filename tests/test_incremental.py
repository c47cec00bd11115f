"""`@defer` and `@stream` over multipart/mixed, merged for clients that did not ask for it,
with errors coded and masked in every part and deferred fields counted by the cost limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sessiongraph.resolvers import openf1 as openf1_resolvers
from tests._servers import Gateway, Sandbox

DEFERRED = """{ meeting(key: 1216) { meetingName
  ... @defer(label: "slow") { sessions { sessionName } } } }"""
MULTIPART = {"Accept": "multipart/mixed;deferSpec=20220824, application/json"}
SESSIONS = ["Practice 1", "Qualifying", "Sprint Shootout", "Sprint", "Race"]


def parts(response: Any) -> list[dict[str, Any]]:
    """The JSON payloads of a multipart/mixed body."""
    assert response.headers["content-type"].startswith("multipart/mixed")
    found = []
    for chunk in response.text.split("\r\n\r\n")[1:]:
        body = chunk.split("\r\n---")[0].strip()
        if body.startswith("{"):
            found.append(json.loads(body))
    return found


def test_deferred_fields_arrive_in_a_later_part(gateway: Gateway) -> None:
    response = gateway.http.post("/graphql", json={"query": DEFERRED}, headers=MULTIPART)
    first, *rest = parts(response)
    assert first["data"] == {"meeting": {"meetingName": "Belgian Grand Prix"}}
    assert first["hasNext"] is True
    assert "extensions" not in first
    last = rest[-1]
    assert last["hasNext"] is False
    (deferred,) = [i for p in rest for i in p.get("incremental", ())]
    assert deferred["path"] == ["meeting"]
    assert deferred["label"] == "slow"
    assert [s["sessionName"] for s in deferred["data"]["sessions"]] == SESSIONS
    assert response.headers["cache-control"] == "no-store"


def test_streamed_lists_arrive_in_later_parts(gateway: Gateway) -> None:
    query = "{ meetings(filter: {year: {eq: 2023}}) @stream(initialCount: 2) { meetingName } }"
    first, *rest = parts(gateway.http.post("/graphql", json={"query": query}, headers=MULTIPART))
    assert len(first["data"]["meetings"]) == 2
    items = [item for p in rest for i in p.get("incremental", ()) for item in i["items"]]
    assert len(first["data"]["meetings"]) + len(items) == 23


def test_errors_in_deferred_parts_are_coded(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(retry_attempts=0)
    sandbox.faults("openf1", error_rate=1.0, error_status=503, path_prefix="/v1/sessions")
    response = gateway.http.post("/graphql", json={"query": DEFERRED}, headers=MULTIPART)
    errors = [e for p in parts(response) for i in p.get("incremental", ()) for e in i["errors"]]
    assert [(e["path"], e["extensions"]["code"]) for e in errors] == [
        (["meeting", "sessions"], "UPSTREAM_UNAVAILABLE")
    ]


@pytest.mark.parametrize("multipart", [True, False])
def test_unexpected_errors_in_deferred_parts_are_masked(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, multipart: bool
) -> None:
    async def broken(*_: Any) -> Any:
        raise RuntimeError("secret detail from the depths")

    monkeypatch.setattr(openf1_resolvers, "sessions_of_meeting", broken)
    headers = MULTIPART if multipart else {}
    response = gateway.http.post("/graphql", json={"query": DEFERRED}, headers=headers)
    assert "secret detail" not in response.text
    if multipart:
        errors = [e for p in parts(response) for i in p.get("incremental", ()) for e in i["errors"]]
    else:
        errors = response.json()["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["INTERNAL_SERVER_ERROR"]


def test_clients_that_did_not_ask_for_multipart_get_one_answer(gateway: Gateway) -> None:
    response = gateway.http.post("/graphql", json={"query": DEFERRED})
    assert response.headers["content-type"] == "application/json"
    meeting = response.json()["data"]["meeting"]
    assert [s["sessionName"] for s in meeting["sessions"]] == SESSIONS
    streamed = gateway.http.get(
        "/graphql",
        params={"query": "{ meetings(filter: {year: {eq: 2023}}) @stream { meetingName } }"},
    )
    assert len(streamed.json()["data"]["meetings"]) == 23
    assert streamed.headers["cache-control"].startswith("public")


def test_batches_with_defer_get_whole_answers(gateway: Gateway) -> None:
    batch = gateway.http.post(
        "/graphql", json=[{"query": DEFERRED}, {"query": "{ __typename }"}], headers=MULTIPART
    )
    first, second = batch.json()
    assert len(first["data"]["meeting"]["sessions"]) == 5
    assert second == {"data": {"__typename": "Query"}}


def test_deferred_fields_count_towards_the_cost_limit(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(max_query_cost=100)
    query = """{ meetings { meetingName ... @defer { sessions { sessionName
                 meeting { meetingName } } } } }"""
    response = gateway.http.post("/graphql", json={"query": query}, headers=MULTIPART)
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert sandbox.requests("openf1") == 0
