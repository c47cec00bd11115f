"""One feed per topic for any number of subscribers: started by the first, stopped after the
last, each subscriber behind a bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import SubscriptionLimit
from ._tasks import stop_tasks

__all__ = ["Event", "Feed", "Hub", "Producer"]

logger = logging.getLogger("sessiongraph.live")

T = TypeVar("T")

# A subscriber this many events behind is cut off instead of buffering without bound.
QUEUE_SIZE = 1000
# Events a feed keeps for subscribers that resume with a cursor (and for finished topics).
BACKLOG_SIZE = 50_000


@dataclass(frozen=True, slots=True)
class Event(Generic[T]):
    """One value of a topic and where it stands in the topic's order: `order` compares
    across processes (e.g. (date, identity)), `cursor` is its printable form."""

    value: T
    order: tuple[Any, ...]
    cursor: str


@dataclass
class _End:
    error: BaseException | None = None


@dataclass(eq=False)
class _Subscriber(Generic[T]):
    queue: asyncio.Queue[Event[T] | _End] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    cut_off: bool = False


class Feed(Generic[T]):
    """What a producer writes to: `baseline` (what a query shows now, kept for resuming but not
    sent to live subscribers), `publish` (new events), `complete`."""

    def __init__(self, key: Hashable, backlog_size: int) -> None:
        self.key = key
        self.backlog: deque[Event[T]] = deque(maxlen=backlog_size)
        self.subscribers: set[_Subscriber[T]] = set()
        self.ready = asyncio.Event()
        self.finished: _End | None = None
        self.task: asyncio.Task[None] | None = None
        self.published = 0
        # Set by the producer before `mark_ready` when the topic is over (e.g. a finished
        # session): every subscriber then gets the whole backlog, and the end.
        self.over = False

    def baseline(self, events: list[Event[T]]) -> None:
        self.backlog.extend(events)

    def mark_ready(self) -> None:
        self.ready.set()

    def publish(self, event: Event[T]) -> None:
        self.backlog.append(event)
        self.published += 1
        for subscriber in list(self.subscribers):
            self._deliver(subscriber, event)

    def complete(self, error: BaseException | None = None) -> None:
        """No more events: subscribers drain what they have, then end (raising `error`)."""
        if self.finished is not None:
            return
        self.finished = _End(error)
        self.ready.set()
        for subscriber in list(self.subscribers):
            if not subscriber.cut_off:
                self._put_end(subscriber, self.finished)

    def _deliver(self, subscriber: _Subscriber[T], event: Event[T]) -> None:
        if subscriber.cut_off:
            return
        if subscriber.queue.qsize() >= QUEUE_SIZE - 1:
            # The last slot is kept for the error: the subscriber learns why it stops.
            subscriber.cut_off = True
            self._put_end(
                subscriber,
                _End(
                    SubscriptionLimit(
                        f"this subscriber fell {QUEUE_SIZE} events behind and was cut off; "
                        "subscribe again (with the last cursor to miss nothing)",
                        "SLOW_CONSUMER",
                    )
                ),
            )
            return
        subscriber.queue.put_nowait(event)

    @staticmethod
    def _put_end(subscriber: _Subscriber[T], end: _End) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            subscriber.queue.put_nowait(end)


def _resumed(backlog: list[Event[T]], after: tuple[Any, ...] | None) -> list[Event[T]]:
    """What a subscriber resuming `after` has not had: what this process published after that
    very event, when it is in the backlog (exact even where an upstream published out of
    order); else, as from another process, the events that come after it in the order."""
    if after is None:
        return backlog
    for index in range(len(backlog) - 1, -1, -1):
        if backlog[index].order == after:
            return backlog[index + 1 :]
    return [event for event in backlog if event.order > after]


# Runs a topic: loads its baseline, marks the feed ready, publishes until cancelled or done.
Producer = Callable[[Feed[Any]], Awaitable[None]]


class Hub:
    """The process's feeds by topic key."""

    def __init__(self, backlog_size: int = BACKLOG_SIZE) -> None:
        self.backlog_size = backlog_size
        self.feeds: dict[Hashable, Feed[Any]] = {}

    @property
    def subscribers(self) -> int:
        return sum(len(feed.subscribers) for feed in self.feeds.values())

    def is_over(self, key: Hashable) -> bool:
        """Whether the topic's feed is known to have no more to come (a finished session): a
        new subscriber then gets its backlog and the end, not just what is published next."""
        feed = self.feeds.get(key)
        return feed is not None and feed.ready.is_set() and (feed.over or feed.finished is not None)

    async def subscribe(
        self,
        key: Hashable,
        producer: Producer,
        *,
        after: tuple[Any, ...] | None = None,
        replay_all: bool = False,
        backlog_size: int | None = None,
    ) -> AsyncIterator[Event[Any]]:
        """The topic's events from now on; with `after`, first those of its backlog that come
        after that order (a resumed subscriber misses nothing and gets nothing twice); with
        `replay_all` (or once the topic is over), the whole backlog first. `backlog_size` bounds a
        new feed's backlog (1: subscribers start from the latest event)."""
        feed = self.feeds.get(key)
        if feed is None or (feed.finished is not None and not feed.subscribers):
            feed = self.feeds[key] = Feed(key, backlog_size or self.backlog_size)
            feed.task = asyncio.create_task(self._run(feed, producer), name=f"live feed {key}")
        subscriber: _Subscriber[Any] = _Subscriber()
        feed.subscribers.add(subscriber)
        try:
            await feed.ready.wait()
            queue = subscriber.queue
            end = feed.finished if feed.finished is not None and queue.empty() else None
            if replay_all or after is not None or feed.over:
                # No await between the snapshot and the drain: what the queue holds now is
                # in the snapshot, and whatever comes later only in the queue.
                snapshot = list(feed.backlog)
                while not queue.empty():
                    item = queue.get_nowait()
                    if isinstance(item, _End):
                        end = item
                for event in _resumed(snapshot, after):
                    yield event
            while True:
                if end is None and queue.empty() and feed.finished is not None:
                    end = feed.finished
                if end is not None and queue.empty():
                    if end.error is not None:
                        raise end.error
                    return
                item = await queue.get()
                if isinstance(item, _End):
                    end = item
                    continue
                yield item
        finally:
            feed.subscribers.discard(subscriber)
            if not feed.subscribers and self.feeds.get(key) is feed:
                del self.feeds[key]
                if feed.task is not None and not feed.task.done():
                    feed.task.cancel()

    async def _run(self, feed: Feed[Any], producer: Producer) -> None:
        try:
            await producer(feed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the producer's failure is every subscriber's error event
            if not isinstance(exc, SubscriptionLimit) and not hasattr(exc, "code"):
                logger.exception("live feed failed", extra={"topic": str(feed.key)})
            feed.complete(exc)
            return
        feed.complete()

    async def close(self) -> None:
        """Stops every feed (the app's shutdown)."""
        tasks = [feed.task for feed in self.feeds.values() if feed.task is not None]
        for feed in list(self.feeds.values()):
            feed.complete()
        self.feeds.clear()
        await stop_tasks(*tasks)
