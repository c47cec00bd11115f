"""Cache backends: memory LRU bounds, Redis with tags, and the fallback when Redis is down."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from sessiongraph.cache import FallbackBackend, MemoryBackend, RedisBackend
from sessiongraph.providers._ratelimit import RateLimiter, SharedRateLimiter


def test_memory_is_bounded_by_entries() -> None:
    async def run() -> MemoryBackend:
        memory = MemoryBackend(max_entries=3, max_bytes=10_000)
        for i in range(5):
            await memory.set(f"k{i}", b"x", 60, ())
        await memory.get("k2")  # k2 becomes the most recently used
        await memory.set("k5", b"x", 60, ())
        return memory

    memory = asyncio.run(run())
    assert list(memory._entries) == ["k4", "k2", "k5"]


def test_memory_is_bounded_by_bytes() -> None:
    async def run() -> MemoryBackend:
        memory = MemoryBackend(max_entries=100, max_bytes=100)
        for i in range(4):
            await memory.set(f"k{i}", b"x" * 40, 60, ())
        await memory.set("huge", b"x" * 101, 60, ())
        return memory

    memory = asyncio.run(run())
    assert memory.bytes <= 100
    assert list(memory._entries) == ["k2", "k3"]


def test_memory_expiry_and_tags() -> None:
    async def run() -> tuple[bytes | None, bytes | None, bytes | None, int]:
        memory = MemoryBackend(max_entries=10, max_bytes=10_000)
        await memory.set("gone", b"1", 0.01, ())
        await memory.set("a", b"2", 60, ("guide:1", "sessions"))
        await memory.set("b", b"3", 60, ("guide:2",))
        await asyncio.sleep(0.02)
        dropped = await memory.invalidate(["guide:1"])
        return await memory.get("gone"), await memory.get("a"), await memory.get("b"), dropped

    assert asyncio.run(run()) == (None, None, b"3", 1)


def test_redis_backend_round_trip_and_tags(redis_url: str) -> None:
    async def run() -> list[object]:
        backend = RedisBackend.from_url(redis_url)
        await backend.client.flushdb()
        await backend.set("a", b"payload", 60, ("t1",))
        await backend.set("b", b"other", 60, ("t2",))
        found = [await backend.get("a"), await backend.get("b")]
        dropped = await backend.invalidate(["t1"])
        found += [await backend.get("a"), await backend.get("b"), dropped]
        await backend.close()
        return found

    assert asyncio.run(run()) == [b"payload", b"other", None, b"other", 1]


def test_fallback_uses_memory_while_redis_is_down() -> None:
    async def run() -> list[object]:
        dead = RedisBackend(aioredis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2))
        backend = FallbackBackend(dead, MemoryBackend(10, 10_000), retry_seconds=60)
        await backend.set("k", b"v", 60, ("t",))
        value = await backend.get("k")
        name = backend.name
        await backend.invalidate(["t"])
        after = await backend.get("k")
        pending = set(backend._pending)
        await backend.close()
        return [value, name, after, pending]

    assert asyncio.run(run()) == [b"v", "memory (redis unavailable)", None, {"t"}]


async def start_one(limiter: RateLimiter) -> None:
    """Takes a place in the limiter's windows and is answered at once."""
    async with limiter.hold():
        pass


def test_shared_rate_limit_spans_processes(redis_url: str) -> None:
    async def run() -> float:
        client = aioredis.Redis.from_url(redis_url)
        await client.delete("sg:ratelimit:shared-test")
        # Two limiters on one key stand for two worker processes.
        one = SharedRateLimiter(client, "shared-test", 5, 0)
        two = SharedRateLimiter(client, "shared-test", 5, 0)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.gather(*(start_one(limiter) for limiter in [one, two] * 6))
        elapsed = loop.time() - began
        await client.aclose()
        return elapsed

    # 12 starts at 5/s across both: the last two wait for a second window.
    assert asyncio.run(run()) >= 1.0


def test_shared_rate_limit_waits_for_the_answers_of_other_processes(redis_url: str) -> None:
    async def run() -> tuple[bool, float]:
        client = aioredis.Redis.from_url(redis_url)
        await client.delete("sg:ratelimit:answer-test")
        one = SharedRateLimiter(client, "answer-test", 1, 0)
        two = SharedRateLimiter(client, "answer-test", 1, 0)
        loop = asyncio.get_running_loop()
        async with one.hold() as place:
            waiter = asyncio.ensure_future(start_one(two))
            await asyncio.sleep(1.5)  # longer than the window: only the answer frees the place
            waited_past_the_window = not waiter.done()
            place.answered()
            answered = loop.time()
        await waiter
        await client.aclose()
        return waited_past_the_window, loop.time() - answered

    waited_past_the_window, after_the_answer = asyncio.run(run())
    assert waited_past_the_window
    assert after_the_answer >= 0.95
