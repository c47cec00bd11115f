"""Subscription resolvers: the connection's limits, the topic's events, fresh loaders per event."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from ..errors import BadUserInput, SubscriptionLimit, UpstreamNotConfigured
from ..live import (
    GuidebookChange,
    Live,
    LiveSessionChange,
    SessionStatusRecord,
    Subscribing,
    encode_next_payload,
    subscribing,
)
from ..loaders import Loaders
from ..schema.context import Context, Info
from . import guidebook as guidebook_read

__all__ = [
    "guidebook_changes",
    "openf1_events",
    "openf1_statuses",
    "sqlrace_live_sessions",
    "take_cursor",
]

T = TypeVar("T")

# The cursor of the event being sent: set by the resolver before it yields, read by the
# schema's stream wrapper (same task), which puts it in the payload's `extensions.cursor`.
_cursor: contextvars.ContextVar[str | None] = contextvars.ContextVar("cursor", default=None)


def take_cursor() -> str | None:
    cursor = _cursor.get()
    _cursor.set(None)
    return cursor


def _live(info: Info) -> Live:
    live = info.context.live
    if live is None:  # a context built without the app (e.g. a test's bare schema)
        raise UpstreamNotConfigured("live", "live data is not running in this process")
    return live


async def _guarded(info: Info, events: AsyncIterator[T]) -> AsyncIterator[T]:
    """Counts the subscription against the connection's MAX_SUBSCRIPTIONS_PER_CONNECTION and
    (for HTTP streams, one connection each) the process's MAX_LIVE_CONNECTIONS; hands each
    event over with fresh loaders (a subscription's context lives as long as its connection,
    and cached loads would go stale)."""
    context = info.context
    live = _live(info)
    limit = context.settings.max_subscriptions_per_connection
    active = context.extra.get("subscriptions", 0)
    if active >= limit:
        raise SubscriptionLimit(
            f"at most {limit} subscriptions at once on one connection", "PER_CONNECTION"
        )
    context.extra["subscriptions"] = active + 1
    try:
        with contextlib.ExitStack() as stack:
            if not context.extra.get("websocket"):
                stack.enter_context(live.connection())  # the WebSocket holds one already
            async for value in events:
                context.loaders = Loaders(
                    context.providers, batching=context.settings.dataloader_batching
                )
                yield value
    finally:
        context.extra["subscriptions"] -= 1
        await events.aclose()  # type: ignore[attr-defined]


def _after(info: Info, after: str | None) -> str | None:
    """`after`, or an SSE client's `Last-Event-ID` when it reconnects."""
    if after is not None:
        return after
    request = info.context.request
    headers = getattr(request, "headers", None)
    found = headers.get("last-event-id") if headers is not None else None
    return found or None


async def openf1_events(
    info: Info,
    endpoint: str,
    session_key: int | None,
    latest: bool,
    after: str | None,
    driver_number: int | None = None,
) -> AsyncIterator[Any]:
    """Records of one OpenF1 topic, in order; `driver_number` keeps one driver's. A WebSocket
    subscription without a cursor to a topic not known to be over joins the group of its
    document (its events are sent to it directly, and this yields none)."""
    live = _live(info)
    pinned = info.context.extra.get(_GROUP_SESSION)
    key = pinned if pinned is not None else await live.openf1.session_key(session_key, latest)
    cursor = _after(info, after)
    operation = subscribing()
    if operation is not None and cursor is None and not live.openf1.is_over(endpoint, key):
        group = _group_key(info, operation, endpoint, key)
        answers = functools.partial(
            _group_answers, _group_context(info, key), info.schema, operation
        )
        async for _ in _guarded(info, live.groups.membership(group, operation, answers)):
            pass
        return

    async def records() -> AsyncIterator[Any]:
        async for event in live.openf1.events(endpoint, key, cursor):
            if driver_number is not None and getattr(event.value, "driver_number", None) not in (
                driver_number,
            ):
                continue
            _cursor.set(event.cursor)
            yield event.value

    async for record in _guarded(info, records()):
        yield record


# A group's own run of its members' document follows the session they resolved (`latest`
# could name another by now).
_GROUP_SESSION = "group_session_key"


def _group_key(info: Info, operation: Subscribing, endpoint: str, session_key: int) -> Any:
    """What makes two members' answers the same."""
    return (
        endpoint,
        session_key,
        operation.query,
        operation.operation_name,
        # Any JSON a client sent (integers past 64 bits too): not orjson.
        json.dumps(operation.variables, sort_keys=True, default=repr),
        # Guidebook keys give providers of their own: never one group across them.
        id(info.context.providers),
    )


def _group_context(info: Info, session_key: int) -> Context:
    """The group's own context, not the member's (the group may outlive its connection)."""
    context = info.context
    return dataclasses.replace(
        context,
        loaders=Loaders(context.providers, batching=context.settings.dataloader_batching),
        request=None,
        response=None,
        connection_params=None,
        extra={"websocket": True, _GROUP_SESSION: session_key},
        reported_errors=[],
    )


async def _group_answers(
    context: Context, schema: Any, operation: Subscribing
) -> AsyncIterator[str]:
    """The members' document run once for their group, on a context without the request (an
    OpenF1 topic's answers depend on the event alone), each event's answer encoded as a
    `next` payload."""
    results = await schema.stream(
        operation.query,
        variable_values=operation.variables,
        context_value=context,
        operation_name=operation.operation_name,
    )
    async with contextlib.aclosing(results):
        async for result in results:
            if isinstance(result, PreExecutionError) or not isinstance(result, ExecutionResult):
                # The members' own runs passed the same checks: not expected.
                raise TypeError(f"a group's run gave {type(result).__name__}")
            yield encode_next_payload(result.data, result.errors, result.extensions)


async def openf1_statuses(
    info: Info, session_key: int | None, latest: bool
) -> AsyncIterator[SessionStatusRecord]:
    live = _live(info)
    key = await live.openf1.session_key(session_key, latest)
    async for record in _guarded(info, live.openf1.statuses(key)):
        yield record


async def guidebook_changes(info: Info, guide_id: int) -> AsyncIterator[GuidebookChange]:
    live = _live(info)
    provider = guidebook_read.provider(info)
    if guide_id <= 0:
        raise BadUserInput("`guideId` must be a positive Guidebook id")
    async for change in _guarded(info, live.guidebook.changes(provider, guide_id)):
        yield change


async def sqlrace_live_sessions(info: Info, connection: str) -> AsyncIterator[LiveSessionChange]:
    live = _live(info)
    if live.sqlrace is None:
        raise info.context.providers.not_configured("sqlrace")
    if not connection or len(connection) > 200:
        raise BadUserInput("`connection` must be a connection's name")
    async for change in _guarded(info, live.sqlrace.changes(connection)):
        yield change
