"""The cache seen from GraphQL: warm reads, coalescing, stale answers, Redis shared by gateways."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests._servers import Sandbox

SEASON = "{ meetings(filter: {year: {eq: 2023}}) { sessions { sessionName meeting { year } } } }"


def test_warm_queries_cost_no_upstream_requests(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(cache_url="memory://")
    cold = gateway.query(SEASON)
    assert sandbox.requests("openf1") == 2
    for _ in range(5):
        assert gateway.query(SEASON) == cold
    assert sandbox.requests("openf1") == 2
    stats = gateway.http.get("/readyz").json()["cache"]
    assert stats["backend"] == "memory"
    # Identical queries replay the stored response; a new shape of query reuses the reads.
    assert stats["upstreams"]["graphql"] == {"stored": 1, "hit": 5}
    other = gateway.query("{ meetings(filter: {year: {eq: 2023}}) { meetingName } }")
    assert len(other["data"]["meetings"]) == 23
    assert sandbox.requests("openf1") == 2
    assert gateway.http.get("/readyz").json()["cache"]["upstreams"]["openf1"]["hit"] == 1


def test_replayed_responses_never_cross_credentials_or_carry_errors(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(cache_url="memory://")
    query = "{ meeting(key: 1216) { year } }"
    gateway.query(query)
    gateway.query(query, Authorization="Bearer someone-else")
    stats = gateway.http.get("/readyz").json()["cache"]["upstreams"]["graphql"]
    assert stats == {"stored": 2}
    failing = gateway.query("{ meeting(key: 4242) { year } }")
    again = gateway.query("{ meeting(key: 4242) { year } }")
    assert failing == again
    assert gateway.http.get("/readyz").json()["cache"]["upstreams"]["graphql"] == {"stored": 2}


def test_concurrent_identical_queries_share_upstream_requests(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(cache_url="none")
    sandbox.faults("openf1", latency_ms=300)
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: gateway.query(SEASON), range(32)))
    assert all(r == results[0] and "errors" not in r for r in results)
    # Without a cache nothing is kept, but reads in flight are shared.
    assert sandbox.requests("openf1") < 8


def test_a_failing_upstream_serves_stale_data_with_a_warning(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(
        cache_url="memory://",
        cache_ttl_openf1_settled_seconds=0.001,
        cache_stale_seconds=0,
        retry_attempts=0,
    )
    fresh = gateway.query("{ meeting(key: 1216) { meetingName } }")
    sandbox.faults("openf1", error_rate=1.0, error_status=503)
    stale = gateway.query("{ meeting(key: 1216) { meetingName } }")
    assert stale["data"] == fresh["data"]
    (warning,) = stale["extensions"]["warnings"]
    assert warning["code"] == "STALE_DATA"
    assert warning["upstream"] == "openf1"
    assert "errors" not in stale


def test_gateways_share_a_redis_cache(make_gateway: Any, sandbox: Sandbox, redis_url: str) -> None:
    first = make_gateway(cache_url=redis_url)
    second = make_gateway(cache_url=redis_url)
    query = "{ meetings(filter: {year: {eq: 2024}}) { meetingKey } }"
    first.http.post("/graphql", json={"query": "{ __typename }"})
    answer = first.query(query)
    before = sandbox.requests("openf1")
    assert second.query(query) == answer
    assert sandbox.requests("openf1") == before
    assert second.http.get("/readyz").json()["cache"]["backend"] == "redis"


def test_a_redis_outage_is_never_an_error(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(cache_url="redis://127.0.0.1:9/0")
    for _ in range(2):
        result = gateway.query("{ meeting(key: 1216) { meetingName } }")
        assert result == {"data": {"meeting": {"meetingName": "Belgian Grand Prix"}}}
    assert sandbox.requests("openf1") == 1  # the memory fallback cached it
    assert gateway.http.get("/readyz").json()["cache"]["backend"].startswith("memory")


def test_persisted_queries_are_shared_through_redis(make_gateway: Any, redis_url: str) -> None:
    query = "{ meeting(key: 1216) { meetingName } }"
    extensions = {
        "persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(query.encode()).hexdigest()}
    }
    first, second = make_gateway(cache_url=redis_url), make_gateway(cache_url=redis_url)
    first.http.post("/graphql", json={"query": query, "extensions": extensions})
    answer = second.http.post("/graphql", json={"extensions": extensions}).json()
    assert answer == {"data": {"meeting": {"meetingName": "Belgian Grand Prix"}}}
