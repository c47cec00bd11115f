"""The hub: one producer per topic for any number of subscribers, bounded queues, resumption."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sessiongraph.errors import SubscriptionLimit
from sessiongraph.live import Event, Feed, Hub
from sessiongraph.live._hub import QUEUE_SIZE


def event(n: int) -> Event[int]:
    return Event(n, (n,), str(n))


class Counter:
    """A producer that publishes on demand and counts how often it was started and stopped."""

    def __init__(self, baseline: int = 0, over: bool = False) -> None:
        self.started = 0
        self.stopped = 0
        self.baseline = baseline
        self.over = over
        self.feed: Feed[Any] | None = None

    async def __call__(self, feed: Feed[Any]) -> None:
        self.started += 1
        self.feed = feed
        feed.baseline([event(n) for n in range(self.baseline)])
        feed.over = self.over
        feed.mark_ready()
        if self.over:
            return
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped += 1

    def publish(self, *numbers: int) -> None:
        assert self.feed is not None
        for n in numbers:
            self.feed.publish(event(n))


async def take(iterator: Any, count: int) -> list[int]:
    return [(await anext(iterator)).value for _ in range(count)]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_producer_for_many_subscribers_stopped_after_the_last() -> None:
    hub, producer = Hub(), Counter()
    streams = [hub.subscribe("topic", producer) for _ in range(100)]
    firsts = [asyncio.ensure_future(anext(s)) for s in streams]
    await settle()
    assert producer.started == 1
    producer.publish(1, 2)
    assert [(await f).value for f in firsts] == [1] * 100
    assert [await take(s, 1) for s in streams] == [[2]] * 100
    for stream in streams[:-1]:
        await stream.aclose()
    await settle()
    assert producer.stopped == 0  # one subscriber is left
    await streams[-1].aclose()
    await settle()
    assert producer.stopped == 1
    assert hub.feeds == {}


async def test_live_subscribers_do_not_get_the_baseline_and_resumers_miss_nothing() -> None:
    hub, producer = Hub(), Counter(baseline=5)
    live = hub.subscribe("topic", producer)
    pending = asyncio.ensure_future(anext(live))
    await settle()
    producer.publish(5, 6)
    assert (await pending).value == 5
    resumed = hub.subscribe("topic", producer, after=(2,))
    assert await take(resumed, 4) == [3, 4, 5, 6]
    producer.publish(7)
    assert await take(resumed, 1) == [7]
    assert await take(live, 2) == [6, 7]
    await live.aclose()
    await resumed.aclose()


async def test_a_topic_that_is_over_gives_its_backlog_then_ends() -> None:
    hub = Hub()
    events = [e.value async for e in hub.subscribe("done", Counter(baseline=3, over=True))]
    assert events == [0, 1, 2]


async def test_a_slow_subscriber_is_cut_off_with_a_coded_error_and_others_go_on() -> None:
    hub, producer = Hub(), Counter()
    slow, fast = hub.subscribe("topic", producer), hub.subscribe("topic", producer)
    first_slow, first_fast = asyncio.ensure_future(anext(slow)), asyncio.ensure_future(anext(fast))
    await settle()
    producer.publish(0)
    await first_slow
    await first_fast
    for n in range(1, QUEUE_SIZE + 10):
        producer.publish(n)
        assert (await anext(fast)).value == n
    received = 0

    async def drain() -> None:
        nonlocal received
        async for _ in slow:
            received += 1

    with pytest.raises(SubscriptionLimit) as refused:
        await drain()
    assert refused.value.reason == "SLOW_CONSUMER"
    assert received < QUEUE_SIZE
    producer.publish(99999)
    assert (await anext(fast)).value == 99999
    await fast.aclose()


async def test_a_failing_producer_ends_every_subscriber_with_its_error() -> None:
    hub = Hub()

    async def failing(feed: Feed[Any]) -> None:
        feed.mark_ready()
        await asyncio.sleep(0)
        raise SubscriptionLimit("gone", "TEST")

    streams = [hub.subscribe("topic", failing) for _ in range(3)]
    for stream in streams:
        with pytest.raises(SubscriptionLimit):
            await anext(stream)
    # A later subscriber starts the topic again.
    restarted = Counter()
    again = hub.subscribe("topic", restarted)
    pending = asyncio.ensure_future(anext(again))
    await settle()
    restarted.publish(1)
    assert (await pending).value == 1
    await again.aclose()


async def test_a_resumer_gets_what_came_after_its_event_even_out_of_order() -> None:
    """Published 1, 5, 3, 7: resuming after 5 (in the backlog) gives 3 and 7, as a live
    subscriber saw them; after 4 (not in it, as from another process) what orders after it."""
    hub, producer = Hub(), Counter()
    follower = hub.subscribe("topic", producer)
    pending = asyncio.ensure_future(anext(follower))
    await settle()
    producer.publish(1, 5, 3, 7)
    assert [(await pending).value, *await take(follower, 3)] == [1, 5, 3, 7]

    exact = hub.subscribe("topic", producer, after=(5,))
    assert await take(exact, 2) == [3, 7]
    ordered = hub.subscribe("topic", producer, after=(4,))
    assert await take(ordered, 2) == [5, 7]
    for stream in (follower, exact, ordered):
        await stream.aclose()
