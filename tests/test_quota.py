"""Guidebook's daily quota seen from GraphQL: counted, warned about, refused, shared, reported."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from sessiongraph.sandbox.guidebook import SANDBOX_SECOND_API_KEY
from tests._servers import Gateway, Sandbox
from tests.schema.test_guidebook import BEARER, CDC, CREATE, FIRST_SESSION, KEY, MDS, new_session

GUIDES = "{ guides { totalCount } }"
SCOPE = hashlib.sha256(KEY.encode()).hexdigest()[:16]


def guide(guide_id: int) -> str:
    return f"{{ guide(id: {guide_id}) {{ name }} }}"


def quota_of(gateway: Gateway) -> dict[str, Any]:
    figures: dict[str, Any] = gateway.http.get("/readyz").json()["guidebookQuota"]
    return figures


def warnings_of(result: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [w for w in result.get("extensions", {}).get("warnings", []) if w["code"] == code]


def next_midnight(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)


def test_only_requests_sent_count_and_every_attempt_is_one(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(cache_url="memory://", guidebook_daily_quota=50, retry_attempts=2)
    gateway.query(GUIDES)
    # The same read in another shape is a cache hit: free.
    gateway.query("{ guides { edges { node { name } } } }")
    assert sandbox.requests("guidebook") == 1
    assert quota_of(gateway)["used"] == 1
    sandbox.faults("guidebook", error_rate=1.0, error_status=503)
    failed = gateway.query(guide(CDC))
    assert failed["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    # The first attempt and both retries reached Guidebook, and each counts.
    assert sandbox.requests("guidebook") == 4
    assert quota_of(gateway)["used"] == 4


def test_fewer_than_ten_percent_left_adds_one_warning_per_request(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(guidebook_daily_quota=20)
    for _ in range(17):
        assert "extensions" not in gateway.query(GUIDES)
    # Two reads leave 2, then 1, of 20 requests: one warning, with what is left at the end.
    response = gateway.post(
        {"query": f"{{ a: guide(id: {CDC}) {{ name }} b: guide(id: {MDS}) {{ name }} }}"}
    )
    result = response.json()
    assert result["data"]["a"]
    assert result["data"]["b"]
    (warning,) = warnings_of(result, "UPSTREAM_QUOTA_LOW")
    assert warning == {
        "code": "UPSTREAM_QUOTA_LOW",
        "upstream": "guidebook",
        "message": "guidebook's daily request quota is nearly spent",
        "remaining": 1,
        "limit": 20,
        "resetsAt": next_midnight().isoformat(),
    }
    # An answer with a warning is never cached downstream.
    assert response.headers["cache-control"] == "no-store"
    assert sandbox.requests("guidebook") == 19


def test_a_spent_quota_refuses_reads_and_writes_without_sending(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(guidebook_daily_quota=3)
    for _ in range(3):
        assert "errors" not in gateway.query(GUIDES)
    refused = gateway.query(GUIDES)
    assert refused["data"] == {"guides": None}
    (error,) = refused["errors"]
    extensions = error["extensions"]
    assert extensions["code"] == "UPSTREAM_RATE_LIMITED"
    assert extensions["upstream"] == "guidebook"
    assert extensions["reason"] == "DAILY_QUOTA"
    assert "status" not in extensions  # nothing was sent, so nothing answered
    midnight = next_midnight()
    assert extensions["resetsAt"] == midnight.isoformat()
    assert abs(extensions["retryAfter"] - (midnight.timestamp() - time.time())) < 5
    assert midnight.isoformat() in error["message"]
    created = gateway.query(CREATE, {"input": new_session(importId="quota-1")}, **BEARER)
    assert created["errors"][0]["extensions"]["code"] == "UPSTREAM_RATE_LIMITED"
    stats = sandbox.stats("guidebook")
    assert stats["requests"] == 3
    assert "POST /open-api/v1/sessions/" not in stats["by_method_path"]


def test_a_spent_quota_serves_cached_answers_with_warnings(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(
        cache_url="memory://",
        guidebook_daily_quota=2,
        cache_ttl_guidebook_seconds=0.05,
        cache_stale_seconds=0,
    )
    fresh = gateway.query(guide(CDC))
    gateway.query(GUIDES)
    time.sleep(0.1)
    # The cached read has expired; the reload is refused by the quota, so the cache answers.
    stale = gateway.query(f"{{ guide(id: {CDC}) {{ name guidebookId }} }}")
    assert "errors" not in stale
    assert stale["data"]["guide"]["name"] == fresh["data"]["guide"]["name"]
    (served,) = warnings_of(stale, "STALE_DATA")
    assert served["upstream"] == "guidebook"
    assert "UPSTREAM_RATE_LIMITED" in served["message"]
    (low,) = warnings_of(stale, "UPSTREAM_QUOTA_LOW")
    assert (low["remaining"], low["limit"]) == (0, 2)
    assert sandbox.requests("guidebook") == 2


def test_the_count_starts_again_when_the_utc_day_turns(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(guidebook_daily_quota=2)
    gateway.query(GUIDES)
    gateway.query(GUIDES)
    assert gateway.query(GUIDES)["errors"][0]["extensions"]["code"] == "UPSTREAM_RATE_LIMITED"
    tomorrow = time.time() + 86400
    gateway.app.state.providers.guidebook_quota.clock = lambda: tomorrow
    assert "errors" not in gateway.query(GUIDES)
    figures = quota_of(gateway)
    assert (figures["used"], figures["remaining"]) == (1, 1)
    day_after = next_midnight(datetime.fromtimestamp(tomorrow, UTC))
    assert figures["resetsAt"] == day_after.isoformat()
    assert sandbox.requests("guidebook") == 3


def test_gateways_sharing_redis_share_the_count(
    make_gateway: Any, sandbox: Sandbox, redis_url: str
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    first = make_gateway(cache_url=redis_url, guidebook_daily_quota=3)
    second = make_gateway(cache_url=redis_url, guidebook_daily_quota=3)
    first.query(GUIDES)
    second.query(guide(CDC))
    assert quota_of(first)["used"] == quota_of(second)["used"] == 2
    assert quota_of(second)["store"] == "redis"
    first.query(guide(MDS))
    refused = second.query(f"{{ guidebookSession(id: {FIRST_SESSION}) {{ name }} }}")
    assert refused["errors"][0]["extensions"]["reason"] == "DAILY_QUOTA"
    assert sandbox.requests("guidebook") == 3
    day = datetime.now(UTC).date().isoformat()
    counter = f"sessiongraph:quota:guidebook:{SCOPE}:{day}"
    assert redis.Redis.from_url(redis_url).get(counter) == b"3"
    assert KEY not in str(redis.Redis.from_url(redis_url).keys("sessiongraph:quota:*"))


def test_a_redis_outage_counts_in_process_and_never_fails_a_read(
    make_gateway: Any, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sessiongraph.upstream")
    gateway = make_gateway(cache_url="redis://127.0.0.1:9/0", guidebook_daily_quota=3)
    for query in (GUIDES, guide(CDC), guide(MDS)):
        assert "errors" not in gateway.query(query)
    refused = gateway.query(f"{{ guidebookSession(id: {FIRST_SESSION}) {{ name }} }}")
    assert refused["errors"][0]["extensions"]["reason"] == "DAILY_QUOTA"
    figures = quota_of(gateway)
    assert (figures["used"], figures["store"]) == (3, "memory (redis unavailable)")
    assert sandbox.requests("guidebook") == 3
    outages = [r for r in caplog.records if "quota counter unavailable" in r.getMessage()]
    assert len(outages) == 1


def test_readyz_and_metrics_show_the_server_keys_quota(make_gateway: Any) -> None:
    gateway = make_gateway(guidebook_daily_quota=50)
    for _ in range(3):
        gateway.query(GUIDES)
    assert quota_of(gateway) == {
        "enabled": True,
        "limit": 50,
        "used": 3,
        "remaining": 47,
        "resetsAt": next_midnight().isoformat(),
        "store": "memory",
    }
    text = gateway.http.get("/metrics").text
    assert 'sessiongraph_guidebook_quota_used{key="server"} 3.0' in text
    assert 'sessiongraph_guidebook_quota_remaining{key="server"} 47.0' in text
    assert SCOPE not in text


def test_a_quota_of_zero_turns_tracking_off(make_gateway: Any) -> None:
    gateway = make_gateway(guidebook_daily_quota=0)
    for _ in range(3):
        assert "errors" not in gateway.query(GUIDES)
    assert quota_of(gateway) == {"enabled": False}


def test_a_real_429_from_guidebook_marks_the_key_spent(make_gateway: Any, sandbox: Sandbox) -> None:
    # Guidebook's own count is ahead of ours (other tools share the key): it allows 2 more.
    config = sandbox.root("guidebook") + "/__sandbox/config"
    httpx.post(config, json={"daily_request_budget": 2}).raise_for_status()
    gateway = make_gateway()
    gateway.query(GUIDES)
    gateway.query(GUIDES)
    throttled = gateway.query(GUIDES)
    extensions = throttled["errors"][0]["extensions"]
    assert (extensions["code"], extensions["status"]) == ("UPSTREAM_RATE_LIMITED", 429)
    until_midnight = (next_midnight() - datetime.now(UTC)).total_seconds()
    assert abs(extensions["retryAfter"] - until_midnight) < 5
    assert sandbox.requests("guidebook") == 3
    # From now on nothing is sent with that key until Guidebook's Retry-After has passed.
    refused = gateway.query(guide(CDC))
    assert refused["errors"][0]["extensions"]["reason"] == "DAILY_QUOTA"
    assert abs(refused["errors"][0]["extensions"]["retryAfter"] - until_midnight) < 5
    assert sandbox.requests("guidebook") == 3
    figures = quota_of(gateway)
    assert (figures["limit"], figures["used"], figures["remaining"]) == (4000, 3, 0)
    assert "spentUntil" in figures


def test_each_callers_key_has_its_own_days_quota(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(guidebook_daily_quota=2)
    second = {"X-Guidebook-Api-Key": SANDBOX_SECOND_API_KEY}
    for _ in range(2):
        assert "errors" not in gateway.query(GUIDES, **second)
    sent = sandbox.requests("guidebook")
    spent = gateway.query(GUIDES, **second)
    assert spent["errors"][0]["extensions"]["reason"] == "DAILY_QUOTA"
    assert SANDBOX_SECOND_API_KEY not in str(spent)
    assert sandbox.requests("guidebook") == sent
    # The server's key still has its whole day; a caller sending that same key spends from it.
    assert "errors" not in gateway.query(GUIDES)
    assert "errors" not in gateway.query(GUIDES, **{"X-Guidebook-Api-Key": KEY})
    assert quota_of(gateway)["used"] == 2
    text = gateway.http.get("/metrics").text
    assert 'sessiongraph_guidebook_quota_remaining{key="caller"} 0.0' in text
