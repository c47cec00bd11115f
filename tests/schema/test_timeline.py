"""The cross-source `sessions` timeline: order, keyset pages, window, upstream reads, failures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests._servers import Gateway, Sandbox

TIMELINE = """query($from: DateTime!, $to: DateTime!, $first: Int, $after: String,
                   $sources: [SessionSource!]) {
  sessions(from: $from, to: $to, first: $first, after: $after, sources: $sources) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { __typename id name source startsAt endsAt } }
  }
}"""
COUNTED = TIMELINE.replace("pageInfo {", "totalCount pageInfo {")
# Pre-season testing in Bahrain: three F1 days and many SQL Race runs, no Guidebook event.
BAHRAIN = {"from": "2024-02-29T00:00:00Z", "to": "2024-03-03T00:00:00Z"}
CONFERENCE_DAY = {"from": "2027-04-20T00:00:00Z", "to": "2027-04-21T00:00:00Z"}


def timeline(gateway: Gateway, **variables: Any) -> dict[str, Any]:
    result = gateway.query(TIMELINE, variables)
    assert "errors" not in result, result
    page: dict[str, Any] = result["data"]["sessions"]
    return page


def instants(node: dict[str, Any]) -> tuple[datetime, datetime | None]:
    ends = node["endsAt"]
    return datetime.fromisoformat(node["startsAt"]), ends and datetime.fromisoformat(ends)


def test_sources_merge_in_start_order(gateway: Gateway) -> None:
    result = gateway.query(COUNTED, {**BAHRAIN, "first": 100})
    page = result["data"]["sessions"]
    nodes = [edge["node"] for edge in page["edges"]]

    assert "errors" not in result, result
    assert {n["source"] for n in nodes} == {"OPENF1", "SQLRACE"}
    assert {n["__typename"] for n in nodes} == {"F1Session", "SqlRaceSession"}
    starts = [instants(n)[0] for n in nodes]
    assert starts == sorted(starts)
    assert page["totalCount"] == len(nodes) == 36
    assert page["pageInfo"]["hasNextPage"] is False


def test_every_session_overlaps_the_window(gateway: Gateway) -> None:
    # From the middle of the first F1 testing day: it started before and is still listed.
    window = {"from": "2024-02-29T12:00:00Z", "to": "2024-03-01T12:00:00Z"}
    nodes = [e["node"] for e in timeline(gateway, **window, first=100)["edges"]]
    start, end = (datetime.fromisoformat(window[k].replace("Z", "+00:00")) for k in ("from", "to"))

    assert nodes
    for node in nodes:
        starts_at, ends_at = instants(node)
        assert starts_at < end
        assert starts_at >= start or (ends_at is not None and ends_at > start)
    assert any(instants(n)[0] < start for n in nodes)


def test_pages_continue_across_sources(gateway: Gateway) -> None:
    whole = [e["node"]["id"] for e in timeline(gateway, **BAHRAIN, first=100)["edges"]]
    walked: list[str] = []
    after = None
    for _ in range(10):
        page = timeline(gateway, **BAHRAIN, first=8, after=after)
        walked += [edge["node"]["id"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]

    assert walked == whole


def test_openf1_is_asked_for_the_window_only(gateway: Gateway, sandbox: Sandbox) -> None:
    timeline(gateway, **BAHRAIN, first=5)

    by_path = sandbox.stats("openf1")["by_path"]
    assert by_path == {"/v1/sessions": 1}
    # Guidebook's guides lie in 2027: their sessions are never listed for a 2024 window.
    assert sandbox.stats("guidebook")["by_path"] == {"/open-api/v1/guides/": 1}


def test_guidebook_stops_reading_when_the_page_is_full(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox
) -> None:
    gateway = make_gateway(guidebook_page_size=10)
    page = timeline(gateway, **CONFERENCE_DAY, first=3, sources=["GUIDEBOOK"])

    assert [e["node"]["__typename"] for e in page["edges"]] == ["GuidebookSession"] * 3
    assert page["pageInfo"]["hasNextPage"] is True
    # One page of ten sessions of the one guide the window touches, of fifty in all.
    assert sandbox.stats("guidebook")["by_path"]["/open-api/v1/sessions/"] == 1
    assert sandbox.requests("openf1") == sandbox.requests("sqlrace") == 0


def test_a_failing_source_leaves_the_others(gateway: Gateway, sandbox: Sandbox) -> None:
    sandbox.faults("sqlrace", error_rate=1.0, error_status=503)
    result = gateway.query(COUNTED, {**BAHRAIN, "first": 100})

    page = result["data"]["sessions"]
    assert {e["node"]["source"] for e in page["edges"]} == {"OPENF1"}
    assert page["totalCount"] is None
    (error,) = result["errors"]
    assert error["path"] == ["sessions"]
    assert error["extensions"]["upstream"] == "sqlrace"
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"


def test_unconfigured_sources(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(guidebook_api_key=None)
    quiet = gateway.query(TIMELINE, {**CONFERENCE_DAY})
    asked = gateway.query(TIMELINE, {**CONFERENCE_DAY, "sources": ["GUIDEBOOK"]})

    assert "errors" not in quiet
    assert asked["data"]["sessions"]["edges"] == []
    (error,) = asked["errors"]
    assert error["extensions"]["code"] == "UPSTREAM_NOT_CONFIGURED"
    assert error["extensions"]["upstream"] == "guidebook"


def test_sources_narrow_what_is_read(gateway: Gateway, sandbox: Sandbox) -> None:
    page = timeline(gateway, **BAHRAIN, first=100, sources=["OPENF1"])

    assert {e["node"]["source"] for e in page["edges"]} == {"OPENF1"}
    assert sandbox.requests("sqlrace") == sandbox.requests("guidebook") == 0


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"from": "2024-03-01T00:00:00Z", "to": "2024-03-01T00:00:00Z"}, "to"),
        ({**BAHRAIN, "first": 101}, "first"),
        ({**BAHRAIN, "first": -1}, "first"),
        ({**BAHRAIN, "after": "bm90IGEgY3Vyc29y"}, "after"),
        ({**BAHRAIN, "after": "cG9zaXRpb246Mw=="}, "after"),  # another list's cursor
    ],
)
def test_arguments_that_cannot_be_right(
    gateway: Gateway, sandbox: Sandbox, variables: dict[str, Any], field: str
) -> None:
    result = gateway.query(TIMELINE, variables)

    assert result["data"]["sessions"] is None
    (error,) = result["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert sandbox.requests("openf1") == 0
