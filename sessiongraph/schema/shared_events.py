"""Subscribers of one topic with one document share each event's execution: the event's value
is built once, and its answer computed once per (document, variables) and handed to all."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["SharedEvents", "shared_events"]

T = TypeVar("T")

# Events kept: enough for a burst of a busy topic's rows; older ones are built afresh.
MAX_EVENTS = 4096


class SharedEvents:
    """Only values built here are shared, so a caller-dependent field (a Guidebook key) never
    is: the topics that opt in are those whose answers depend on the event alone."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        # id(source) -> (source, value): the source is kept so that its id is not reused.
        self._values: OrderedDict[int, tuple[Any, Any]] = OrderedDict()
        self._shared: dict[int, Any] = {}
        # (id(value), document, variables) -> (value, result or future)
        self._results: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()
        self.executed = 0
        self.reused = 0

    def value(self, source: Any, build: Callable[[Any], T]) -> T:
        """`build(source)`, once for every subscriber that gets this very source object."""
        found = self._values.get(id(source))
        if found is not None and found[0] is source:
            self._values.move_to_end(id(source))
            return found[1]  # type: ignore[no-any-return]
        value = build(source)
        self._values[id(source)] = (source, value)
        self._shared[id(value)] = value
        while len(self._values) > self.max_events:
            _, (_, dropped) = self._values.popitem(last=False)
            self._shared.pop(id(dropped), None)
        return value

    def is_shared(self, value: Any) -> bool:
        return self._shared.get(id(value)) is value

    def result(self, value: Any, key: tuple[Any, ...], execute: Callable[[], Any]) -> Any:
        """`execute()`'s answer for `value` under `key`, computed once; an awaitable answer
        becomes a future that every subscriber awaits."""
        full = (id(value), *key)
        found = self._results.get(full)
        if found is not None and found[0] is value:
            self.reused += 1
            answer = found[1]
            return _awaiting(answer) if isinstance(answer, asyncio.Future) else answer
        self.executed += 1
        answer = execute()
        if isinstance(answer, Awaitable):
            answer = asyncio.ensure_future(answer)
        self._results[full] = (value, answer)
        while len(self._results) > self.max_events:
            self._results.popitem(last=False)
        return _awaiting(answer) if isinstance(answer, asyncio.Future) else answer


async def _awaiting(future: asyncio.Future[Any]) -> Any:
    # shield: one subscriber leaving must not cancel the answer the others wait for.
    return await asyncio.shield(future)


shared_events = SharedEvents()
