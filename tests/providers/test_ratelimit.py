"""The client-side rate limiter's arithmetic (deterministic: time is passed in)."""

from __future__ import annotations

import asyncio

from sessiongraph.providers._ratelimit import RateLimiter


def test_off_when_both_limits_are_zero() -> None:
    limiter = RateLimiter(0, 0)
    assert not limiter.enabled
    asyncio.run(limiter.acquire())


def test_per_second_window() -> None:
    limiter = RateLimiter(3, 0)
    limiter._starts.extend([10.0, 10.2, 10.4])
    assert limiter.delay(10.5) == 0.5
    assert limiter.delay(11.0) == 0.0


def test_per_minute_window_dominates() -> None:
    limiter = RateLimiter(3, 30)
    limiter._starts.extend(float(i) for i in range(30))
    # The 30th most recent start was at t=0: the next may start at t=60.
    assert limiter.delay(30.0) == 30.0


def test_acquire_spaces_requests() -> None:
    async def burst() -> float:
        limiter = RateLimiter(20, 0)
        loop = asyncio.get_running_loop()
        began = loop.time()
        for _ in range(22):
            await limiter.acquire()
        return loop.time() - began

    # 22 starts at 20/s: the 21st and 22nd wait for the window to move on.
    assert asyncio.run(burst()) >= 0.9
