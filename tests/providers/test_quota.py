"""The daily quota tracker on its own: in process and in a real Redis, with an injected clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from sessiongraph.cache._response import collect_warnings
from sessiongraph.errors import UpstreamQuotaSpent
from sessiongraph.providers._quota import DailyQuota, RedisQuotaStore, utc_day

# 2027-04-20 22:00 UTC: two hours before the day ends.
EVENING = datetime(2027, 4, 20, 22, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2027, 4, 21, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = EVENING) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Make = Callable[..., DailyQuota]


@pytest.fixture(params=["memory", "redis"])
async def make_quota(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Make]:
    """Builds trackers on the in-process store or sharing one real Redis (flushed first)."""
    client: aioredis.Redis | None = None
    if request.param == "redis":
        client = aioredis.Redis.from_url(redis_url)
        await client.flushdb()

    def make(limit: int = 10, clock: Clock | None = None, server_scope: str = "srv") -> DailyQuota:
        shared = RedisQuotaStore(client, "guidebook") if client is not None else None
        return DailyQuota(
            "guidebook", limit, shared=shared, server_scope=server_scope, clock=clock or Clock()
        )

    yield make
    if client is not None:
        await client.aclose()


def test_utc_day() -> None:
    assert utc_day(EVENING) == ("2027-04-20", MIDNIGHT)
    assert utc_day(MIDNIGHT) == ("2027-04-21", MIDNIGHT + 86400)


async def test_counts_each_request_per_scope_until_the_limit(make_quota: Make) -> None:
    quota = make_quota(limit=3)
    for _ in range(3):
        await quota.spend("srv")
    await quota.spend("caller")  # another key's count is its own
    with pytest.raises(UpstreamQuotaSpent) as refused:
        await quota.spend("srv")
    extensions = refused.value.extensions
    assert extensions["code"] == "UPSTREAM_RATE_LIMITED"
    assert extensions["reason"] == "DAILY_QUOTA"
    assert extensions["retryAfter"] == 7200
    assert extensions["resetsAt"] == "2027-04-21T00:00:00+00:00"
    assert "status" not in extensions
    # Refusals are not requests: the count stays at what was sent.
    usage = await quota.usage()
    assert (usage.limit, usage.used, usage.remaining) == (3, 3, 0)
    assert (await quota.usage("caller")).used == 1


async def test_warns_below_ten_percent_once_per_request(make_quota: Make) -> None:
    quota = make_quota(limit=20)
    with collect_warnings() as warnings:
        for _ in range(18):
            await quota.spend("srv")
    assert warnings == []  # 2 of 20 left is not below 10 %
    with collect_warnings() as warnings:
        await quota.spend("srv")
        await quota.spend("srv")
    assert warnings == [
        {
            "code": "UPSTREAM_QUOTA_LOW",
            "upstream": "guidebook",
            "message": "guidebook's daily request quota is nearly spent",
            "remaining": 0,
            "limit": 20,
            "resetsAt": "2027-04-21T00:00:00+00:00",
        }
    ]


async def test_the_day_rolls_over_at_utc_midnight(make_quota: Make) -> None:
    clock = Clock()
    quota = make_quota(limit=2, clock=clock)
    await quota.spend("srv")
    await quota.spend("srv")
    with pytest.raises(UpstreamQuotaSpent):
        await quota.spend("srv")
    clock.now = MIDNIGHT - 0.5
    with pytest.raises(UpstreamQuotaSpent) as refused:
        await quota.spend("srv")
    assert refused.value.extensions["retryAfter"] == 1
    clock.now = MIDNIGHT
    await quota.spend("srv")
    usage = await quota.usage()
    assert (usage.used, usage.remaining) == (1, 1)
    assert usage.as_json()["resetsAt"] == "2027-04-22T00:00:00+00:00"


async def test_an_upstream_429_marks_the_scope_spent(make_quota: Make) -> None:
    clock = Clock()
    quota = make_quota(limit=100, clock=clock)
    await quota.spend("srv")
    error = await quota.upstream_refused("srv", 30.0)
    assert error.extensions["retryAfter"] == 30.0
    assert error.extensions["resetsAt"] == "2027-04-20T22:00:30+00:00"
    with pytest.raises(UpstreamQuotaSpent) as refused:
        await quota.spend("srv")
    assert refused.value.extensions["retryAfter"] == 30
    await quota.spend("caller")  # only that key is refused
    usage = await quota.usage()
    assert (usage.used, usage.remaining) == (1, 0)
    assert usage.as_json()["spentUntil"] == "2027-04-20T22:00:30+00:00"
    clock.now += 30
    await quota.spend("srv")
    # Without Retry-After, the key is refused for the rest of the UTC day.
    error = await quota.upstream_refused("srv", None)
    assert error.extensions["retryAfter"] == 7170
    assert error.extensions["resetsAt"] == "2027-04-21T00:00:00+00:00"
    clock.now = MIDNIGHT - 1
    with pytest.raises(UpstreamQuotaSpent):
        await quota.spend("srv")
    clock.now = MIDNIGHT
    await quota.spend("srv")


async def test_trackers_sharing_redis_share_the_count(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    try:
        first, second = (
            DailyQuota("guidebook", 3, shared=RedisQuotaStore(client, "guidebook"), clock=Clock())
            for _ in range(2)
        )
        await first.spend("abc")
        await second.spend("abc")
        await first.spend("abc")
        with pytest.raises(UpstreamQuotaSpent):
            await second.spend("abc")
        assert await client.get("sessiongraph:quota:guidebook:abc:2027-04-20") == b"3"
        ttl = await client.ttl("sessiongraph:quota:guidebook:abc:2027-04-20")
        # Kept a little past the day's end (two hours away on the clock), then dropped.
        assert 7200 < ttl <= 7200 + 3600
        await first.upstream_refused("def", None)
        with pytest.raises(UpstreamQuotaSpent):
            await second.spend("def")
        assert (await second.usage("def")).remaining == 0
    finally:
        await client.aclose()


async def test_a_redis_outage_counts_locally_and_logs_once(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    down = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1.0)
    try:
        store = RedisQuotaStore(client, "guidebook")
        quota = DailyQuota("guidebook", 5, shared=store, server_scope="srv", clock=Clock())
        await quota.spend("srv")
        await quota.spend("srv")
        assert quota.store == "redis"
        quota.shared = RedisQuotaStore(down, "guidebook")
        caplog.set_level(logging.WARNING, logger="sessiongraph.upstream")
        for _ in range(3):
            await quota.spend("srv")  # never an error: the local count goes on from 2
        with pytest.raises(UpstreamQuotaSpent):
            await quota.spend("srv")
        assert quota.store == "memory (redis unavailable)"
        usage = await quota.usage()
        assert (usage.used, usage.remaining) == (5, 0)
        outages = [r for r in caplog.records if "quota counter unavailable" in r.getMessage()]
        assert len(outages) == 1
    finally:
        await down.aclose()
        await client.aclose()
