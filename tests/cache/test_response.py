"""ResponseCache semantics: TTL, stale-while-revalidate, stale-on-error, single-flight, writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sessiongraph.cache import Freshness, MemoryBackend, ResponseCache, Stored
from sessiongraph.cache._response import collect_warnings
from sessiongraph.errors import UpstreamUnavailable


class Upstream:
    """A fake load function: counts calls, can be slow, can fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.delay = 0.0

    async def load(self) -> Stored:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise UpstreamUnavailable("test", "down", status=503)
        return Stored(200, {}, f"v{self.calls}".encode())


def policy(fresh: float, stale: float = 0.0) -> Callable[[Stored], Freshness | None]:
    return lambda stored: Freshness(fresh, stale) if stored.status == 200 else None


def cache() -> ResponseCache:
    return ResponseCache(MemoryBackend(100, 100_000), grace_seconds=60)


def test_fresh_entries_are_served_without_upstream_calls() -> None:
    async def run() -> tuple[list[bytes], int]:
        responses, upstream = cache(), Upstream()
        bodies = [
            (await responses.read("u", "k", upstream.load, policy(60))).body for _ in range(5)
        ]
        return bodies, upstream.calls

    assert asyncio.run(run()) == ([b"v1"] * 5, 1)


def test_concurrent_identical_reads_become_one() -> None:
    async def run() -> tuple[set[bytes], int, int]:
        responses, upstream = ResponseCache(None), Upstream()
        upstream.delay = 0.05
        results = await asyncio.gather(
            *(responses.read("u", "k", upstream.load, policy(60)) for _ in range(100))
        )
        return {r.body for r in results}, upstream.calls, responses.stats["u"]["coalesced"]

    assert asyncio.run(run()) == ({b"v1"}, 1, 99)


def test_stale_entries_are_served_while_one_refresh_runs() -> None:
    async def run() -> tuple[list[bytes], int, bytes]:
        responses, upstream = cache(), Upstream()
        await responses.read("u", "k", upstream.load, policy(0.01, 60))
        await asyncio.sleep(0.02)
        upstream.delay = 0.05
        stale = await asyncio.gather(
            *(responses.read("u", "k", upstream.load, policy(0.01, 60)) for _ in range(10))
        )
        await asyncio.sleep(0.1)
        upstream.delay = 0
        fresh = await responses.read("u", "k", upstream.load, policy(60, 60))
        return [s.body for s in stale], upstream.calls, fresh.body

    bodies, calls, fresh = asyncio.run(run())
    assert bodies == [b"v1"] * 10
    assert calls == 2
    assert fresh == b"v2"


def test_upstream_failure_serves_stale_with_a_warning() -> None:
    async def run() -> tuple[bytes, list[dict[str, object]]]:
        responses, upstream = cache(), Upstream()
        await responses.read("u", "k", upstream.load, policy(0.01))
        await asyncio.sleep(0.02)
        upstream.fail = True
        with collect_warnings() as warnings:
            stored = await responses.read("u", "k", upstream.load, policy(0.01))
        return stored.body, warnings

    body, warnings = asyncio.run(run())
    assert body == b"v1"
    assert warnings[0]["code"] == "STALE_DATA"
    assert warnings[0]["upstream"] == "u"


def test_failure_without_an_entry_raises() -> None:
    async def run() -> None:
        upstream = Upstream()
        upstream.fail = True
        await cache().read("u", "k", upstream.load, policy(60))

    with pytest.raises(UpstreamUnavailable):
        asyncio.run(run())


def test_invalidation_drops_tagged_entries_and_reads_in_flight() -> None:
    async def run() -> tuple[bytes, bytes, bytes]:
        responses, upstream = cache(), Upstream()
        await responses.read("u", "k", upstream.load, policy(60), ("guide:1",))
        upstream.delay = 0.05
        in_flight = asyncio.ensure_future(
            responses.read("u", "k2", upstream.load, policy(60), ("guide:1",))
        )
        await asyncio.sleep(0.01)
        await responses.invalidate("u", ["guide:1"])
        upstream.delay = 0
        before_write = (await in_flight).body
        after = await responses.read("u", "k", upstream.load, policy(60), ("guide:1",))
        # The read that began before the write must not have been stored.
        again = await responses.read("u", "k2", upstream.load, policy(60), ("guide:1",))
        return before_write, after.body, again.body

    assert asyncio.run(run()) == (b"v2", b"v3", b"v4")


def test_policy_none_is_not_stored() -> None:
    async def run() -> int:
        responses, upstream = cache(), Upstream()
        for _ in range(3):
            await responses.read("u", "k", upstream.load, lambda stored: None)
        return upstream.calls

    assert asyncio.run(run()) == 3


def test_processes_sharing_redis_fill_an_entry_once(redis_url: str) -> None:
    from sessiongraph.cache import FallbackBackend, RedisBackend

    def process_cache() -> ResponseCache:
        shared = FallbackBackend(RedisBackend.from_url(redis_url), MemoryBackend(10, 10_000))
        return ResponseCache(shared, grace_seconds=60)

    async def run() -> tuple[set[bytes], int]:
        first, second = process_cache(), process_cache()
        await first.invalidate("u", ["cross"])
        upstream = Upstream()
        upstream.delay = 0.2
        results = await asyncio.gather(
            *(
                cache.read("u", "cross-key", upstream.load, policy(60), ("cross",))
                for cache in [first, second] * 5
            )
        )
        await first.invalidate("u", ["cross"])
        await first.close()
        await second.close()
        return {r.body for r in results}, upstream.calls

    assert asyncio.run(run()) == ({b"v1"}, 1)
