"""HTTP caching of answers: Cache-Control from the reads behind them, ETags, 304s, HEAD."""

from __future__ import annotations

from typing import Any

import pytest

from sessiongraph.http_caching import entity_tag, matches_entity_tag
from tests._servers import MUTATION_TOKEN, Gateway, Sandbox

SETTLED = "{ meeting(key: 1216) { meetingName } }"


def max_age(cache_control: str) -> int:
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name == "max-age":
            return int(value)
    raise AssertionError(f"no max-age in {cache_control!r}")


@pytest.mark.parametrize("cache_url", ["none", "memory://"])
def test_answers_say_how_long_they_stay_fresh(make_gateway: Any, cache_url: str) -> None:
    gateway = make_gateway(cache_url=cache_url, http_max_age_seconds=120)
    for _ in range(2):  # executed, then (with a cache) replayed
        response = gateway.http.get("/graphql", params={"query": SETTLED})
        control = response.headers["cache-control"]
        assert control.startswith("public, ")
        assert 100 <= max_age(control) <= 120  # settled data: capped by the setting
        assert response.headers["etag"].startswith('"')
        assert "Accept" in response.headers["vary"]


def test_the_least_fresh_read_decides(make_gateway: Any) -> None:
    # Guidebook reads stay fresh 30 s by default; OpenF1's settled ones for hours.
    gateway = make_gateway(http_max_age_seconds=3600)
    both = gateway.http.get(
        "/graphql", params={"query": "{ meeting(key: 1216) { year } guide(id: 58214) { name } }"}
    )
    assert max_age(both.headers["cache-control"]) <= 30
    alone = gateway.http.get("/graphql", params={"query": SETTLED})
    assert max_age(alone.headers["cache-control"]) > 30


def test_if_none_match_gets_304_without_a_body(gateway: Gateway, sandbox: Sandbox) -> None:
    first = gateway.http.get("/graphql", params={"query": SETTLED})
    tag = first.headers["etag"]
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        again = gateway.http.get(
            "/graphql", params={"query": SETTLED}, headers={"If-None-Match": header}
        )
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == tag
        assert again.headers["cache-control"].startswith("public")
    posted = gateway.http.post("/graphql", json={"query": SETTLED}, headers={"If-None-Match": tag})
    # The same answer by POST has the same tag (the body is the same bytes).
    assert posted.status_code == 304


@pytest.mark.parametrize(
    "junk", ['"nope"', "W/", ",,,", "x" * 5000, '"' * 3, 'W/W/"a"', b"\xff\xfe".decode("latin-1")]
)
def test_junk_if_none_match_gets_the_answer(gateway: Gateway, junk: str) -> None:
    response = gateway.http.get(
        "/graphql", params={"query": SETTLED}, headers={"If-None-Match": junk.encode("latin-1")}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"meeting": {"meetingName": "Belgian Grand Prix"}}}


def test_errors_mutations_and_refusals_are_never_stored(gateway: Gateway) -> None:
    failed = gateway.http.get("/graphql", params={"query": "{ meeting(key: 4242) { year } }"})
    invalid = gateway.http.get("/graphql", params={"query": "{ nope }"})
    mutation = gateway.http.post(
        "/graphql",
        json={"query": "mutation { deleteSession(input: {id: 1}) { deletedId } }"},
        headers={"Authorization": f"Bearer {MUTATION_TOKEN}"},
    )
    for response in (failed, invalid, mutation):
        assert response.headers["cache-control"] == "no-store", response.text
        assert "etag" not in response.headers


def test_stale_answers_are_not_stored(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(
        cache_url="memory://",
        cache_ttl_guidebook_seconds=0.001,
        cache_stale_seconds=0,
        retry_attempts=0,
    )
    query = "{ guide(id: 58214) { name } }"
    gateway.query(query)
    sandbox.faults("guidebook", error_rate=1.0, error_status=503)
    stale = gateway.http.get("/graphql", params={"query": query})
    assert stale.json()["extensions"]["warnings"]
    assert stale.headers["cache-control"] == "no-store"


def test_private_when_queries_need_a_token(make_gateway: Any) -> None:
    gateway = make_gateway(require_token_for_queries=True)
    response = gateway.http.get(
        "/graphql",
        params={"query": SETTLED},
        headers={"Authorization": f"Bearer {MUTATION_TOKEN}"},
    )
    assert response.headers["cache-control"].startswith("private, ")
    assert "Authorization" in response.headers["vary"]


def test_head_answers_like_get_without_a_body(gateway: Gateway, sandbox: Sandbox) -> None:
    got = gateway.http.get("/graphql", params={"query": SETTLED})
    head = gateway.http.head("/graphql", params={"query": SETTLED})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["content-length"] == got.headers["content-length"]
    refused = gateway.http.head("/graphql", params={"query": "mutation { __typename }"})
    assert refused.status_code in (400, 405)


def test_entity_tags() -> None:
    tag = entity_tag(b"{}")
    assert tag == entity_tag(b"{}") != entity_tag(b"{ }")
    assert matches_entity_tag(f"W/{tag}", tag)
    assert not matches_entity_tag(None, tag)
    assert not matches_entity_tag(tag[:-2] + '"', tag)
