"""The client-side rate limiter: its arithmetic (time passed in), its waits, and OpenF1's count."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from random import Random
from typing import Any

import pytest

from sessiongraph.providers._ratelimit import Place, RateLimiter
from sessiongraph.sandbox.openf1 import DATA_DIR
from tests._servers import Sandbox


def answered_places(limiter: RateLimiter, *times: float) -> None:
    limiter._places.extend(Place(limiter, answered_at=t) for t in times)


def test_off_when_both_limits_are_zero() -> None:
    async def run() -> None:
        async with limiter.hold() as place:
            place.answered()

    limiter = RateLimiter(0, 0)
    assert not limiter.enabled
    asyncio.run(run())


def test_per_second_window() -> None:
    limiter = RateLimiter(3, 0, margin=0)
    answered_places(limiter, 10.0, 10.2, 10.4)
    assert limiter.delay(10.5) == pytest.approx(0.5)
    assert limiter.delay(11.0) == 0.0


def test_per_minute_window_dominates() -> None:
    limiter = RateLimiter(3, 30, margin=0)
    answered_places(limiter, *(float(i) for i in range(30)))
    # The 30th most recent answer was at t=0: the next may start at t=60.
    assert limiter.delay(30.0) == 30.0


def test_a_place_counts_from_its_answer_not_its_start() -> None:
    # The server may have counted a request at any moment until its answer began.
    limiter = RateLimiter(1, 0, margin=0)
    place = Place(limiter)
    limiter._places.append(place)
    assert limiter.delay(10.0) == math.inf
    place.answered_at = 10.3
    assert limiter.delay(10.5) == pytest.approx(0.8)


def test_a_waiter_behind_an_unanswered_place_starts_a_window_after_its_answer() -> None:
    async def run() -> float:
        limiter = RateLimiter(1, 0, margin=0)
        limiter.spans = (0.2, 60.0)
        limiter._windows = [(0.2, 1)]
        loop = asyncio.get_running_loop()
        async with limiter.hold() as first:
            waiter = asyncio.ensure_future(limiter._take())
            await asyncio.sleep(0.3)
            assert not waiter.done()  # a whole window has passed, but the answer has not come
            first.answered()
            answered = loop.time()
        await waiter
        return loop.time() - answered

    assert asyncio.run(run()) >= 0.19


def test_leaving_without_an_answer_ends_the_place() -> None:
    async def run() -> float:
        limiter = RateLimiter(1, 0, margin=0)
        with contextlib.suppress(TimeoutError):
            async with limiter.hold():
                raise TimeoutError
        return limiter.delay(time.monotonic())

    assert 0.9 < asyncio.run(run()) <= 1.0


def test_hold_spaces_requests() -> None:
    async def burst() -> float:
        limiter = RateLimiter(20, 0)
        loop = asyncio.get_running_loop()
        began = loop.time()
        for _ in range(22):
            async with limiter.hold():
                pass
        return loop.time() - began

    # 22 starts at 20/s: the 21st and 22nd wait for the window to move on.
    assert asyncio.run(burst()) >= 0.9


def test_no_server_window_ever_holds_more_than_the_limits() -> None:
    # Requests take random times to reach the server and to be answered; the server counts
    # arrivals, as OpenF1 (and the emulator) do.
    async def run() -> list[float]:
        limiter = RateLimiter(3, 30, margin=0)
        limiter.spans = (0.05, 1.0)  # the same arithmetic, twenty times faster
        limiter._windows = [(0.05, 3), (1.0, 30)]
        loop = asyncio.get_running_loop()
        arrivals: list[float] = []
        random = Random(7)

        async def request() -> None:
            async with limiter.hold() as place:
                await asyncio.sleep(random.uniform(0, 0.03))
                arrivals.append(loop.time())
                await asyncio.sleep(random.uniform(0, 0.03))
                place.answered()

        await asyncio.gather(*(request() for _ in range(40)))
        return sorted(arrivals)

    arrivals = asyncio.run(run())
    for i, arrival in enumerate(arrivals):
        assert sum(1 for a in arrivals[i:] if a - arrival < 0.05) <= 3
        assert sum(1 for a in arrivals[i:] if a - arrival < 1.0) <= 30


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
