"""The client-side rate limiter's arithmetic (deterministic: time is passed in)."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sessiongraph.providers._ratelimit import RateLimiter
from sessiongraph.sandbox.openf1 import DATA_DIR
from tests._servers import Sandbox


def test_off_when_both_limits_are_zero() -> None:
    limiter = RateLimiter(0, 0)
    assert not limiter.enabled
    asyncio.run(limiter.acquire())


def test_per_second_window() -> None:
    limiter = RateLimiter(3, 0, margin=0)
    limiter._starts.extend([10.0, 10.2, 10.4])
    assert limiter.delay(10.5) == 0.5
    assert limiter.delay(11.0) == 0.0


def test_per_minute_window_dominates() -> None:
    limiter = RateLimiter(3, 30, margin=0)
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


def test_windows_are_kept_wider_than_the_upstreams() -> None:
    # A request that arrives late must not land in the server's window of the one before.
    limiter = RateLimiter(3, 30)
    limiter._starts.extend([10.0, 10.2, 10.4])
    assert 0.5 < limiter.delay(10.5) <= 0.6
    limiter = RateLimiter(3, 30)
    limiter._starts.extend(float(2 * i) for i in range(30))
    # The oldest of the last thirty started at t=0: not again before t=63.
    assert limiter.delay(60.0) == pytest.approx(3.0)


def test_no_window_ever_holds_more_than_the_limits() -> None:
    async def run() -> list[float]:
        limiter = RateLimiter(3, 30, margin=0)
        limiter.spans = (0.05, 1.0)  # the same arithmetic, twenty times faster
        limiter._windows = [(0.05, 3), (1.0, 30)]
        starts = []
        for _ in range(40):
            await limiter.acquire()
            starts.append(asyncio.get_running_loop().time())
        return starts

    starts = asyncio.run(run())
    for i, start in enumerate(starts):
        assert sum(1 for s in starts[i:] if s - start < 0.05) <= 3
        assert sum(1 for s in starts[i:] if s - start < 1.0) <= 30


def test_the_gateway_never_makes_openf1_answer_429(make_gateway: Any, sandbox: Sandbox) -> None:
    # The emulator enforces the free tier over arrivals; the gateway's limiter keeps below it.
    sandbox.faults("openf1", rate_limit_per_second=3, rate_limit_per_minute=30)
    gateway = make_gateway(openf1_rate_per_second=3, openf1_rate_per_minute=30, retry_attempts=0)

    def ask(key: int) -> Any:
        return gateway.query(f"{{ meeting(key: {key}) {{ meetingKey }} }}")

    with ThreadPoolExecutor(6) as pool:
        keys = [m["meeting_key"] for m in json.loads((DATA_DIR / "meetings.json").read_text())]
        answers = list(pool.map(ask, keys[:12]))
    assert all("errors" not in a for a in answers), answers
    assert sandbox.stats("openf1")["rate_limited"] == 0
