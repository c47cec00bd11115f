"""WebSocket subscribers of one live topic with one document, served as a group: each event is
executed and encoded once, and each member's copy is queued on its connection's outbox."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import SubscriptionLimit
from ._hub import QUEUE_SIZE
from ._tasks import stop_tasks

__all__ = ["Groups", "Outbox", "Subscribing", "encode_next_payload", "subscribing"]

logger = logging.getLogger("sessiongraph.live")


class Outbox:
    """One WebSocket's outgoing text frames in order, written by one task: a group queues its
    members' frames without waiting for any socket, and the protocol's own messages (a
    `complete`, a pong) wait their turn behind them, so none overtakes an event."""

    def __init__(self, send_text: Callable[[str], Awaitable[None]]) -> None:
        self._send_text = send_text
        self._frames: deque[tuple[_Member | None, str, asyncio.Future[None] | None]] = deque()
        self._ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    def push(self, member: _Member, text: str) -> None:
        if self._failure is not None:
            return  # the socket is gone; its handler is ending the member
        member.pending += 1
        self._frames.append((member, text, None))
        self._wake()

    async def send(self, text: str) -> None:
        """`text` once every frame queued before it is written (raises what the socket
        raised, if it failed)."""
        if self._failure is not None:
            raise self._failure
        future = asyncio.get_running_loop().create_future()
        self._frames.append((None, text, future))
        self._wake()
        await future

    async def close(self) -> None:
        self._fail(_closed())
        if self._writer is not None:
            await stop_tasks(self._writer)

    def _wake(self) -> None:
        if self._writer is None and self._failure is None:
            # Its own context: the writer must not carry the operation that happened to start it.
            self._writer = asyncio.create_task(
                self._write(), name="websocket outbox", context=contextvars.Context()
            )
        self._ready.set()

    async def _write(self) -> None:
        frames = self._frames
        while True:
            await self._ready.wait()
            self._ready.clear()
            while frames:
                member, text, future = frames.popleft()
                if member is not None:
                    member.pending -= 1
                    if member.withdrawn:
                        continue  # the client stopped it: nothing more for that id
                try:
                    await self._send_text(text)
                except BaseException as exc:
                    # A cancel (the connection closing) reaches waiting senders as a closed
                    # connection, and still ends this task as cancelled.
                    failure = exc if isinstance(exc, Exception) else _closed()
                    if future is not None and not future.done():
                        future.set_exception(failure)
                    self._fail(failure)
                    if failure is not exc:
                        raise
                    return
                if future is not None and not future.done():
                    future.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        while self._frames:
            _, _, future = self._frames.popleft()
            if future is not None and not future.done():
                future.set_exception(error)


def _closed() -> ConnectionError:
    return ConnectionError("the connection closed")


@dataclass(frozen=True, slots=True)
class Subscribing:
    """A WebSocket subscription being started: its id and request, its connection's outbox
    (made on first use), and its protocol's event message (`next`, legacy graphql-ws `data`)."""

    id: str
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    outbox: Callable[[], Outbox]
    message_type: str = "next"


_subscribing: contextvars.ContextVar[Subscribing | None] = contextvars.ContextVar(
    "subscribing", default=None
)


def subscribing(operation: Subscribing | None = None) -> Subscribing | None:
    """The WebSocket operation this task runs (set by the transport when it starts one);
    with an argument, sets it."""
    if operation is not None:
        _subscribing.set(operation)
    return _subscribing.get()


@dataclass(eq=False)
class _Member:
    outbox: Outbox
    prefix: str  # the message up to its payload: `{"id":…,"type":"next","payload":`
    ended: asyncio.Future[BaseException | None]
    pending: int = 0
    # Left before its group ended (the client's `complete`): its queued frames are dropped.
    withdrawn: bool = False


@dataclass(eq=False)
class _Group:
    key: Hashable
    members: set[_Member] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


# A group's events as encoded `next` payloads, from running the members' document once.
Answers = Callable[[], AsyncIterator[str]]


class Groups:
    """The process's groups by key (topic, document, variables and whatever else makes two
    members' answers the same)."""

    def __init__(self) -> None:
        self._groups: dict[Hashable, _Group] = {}

    @property
    def members(self) -> int:
        return sum(len(group.members) for group in self._groups.values())

    async def close(self) -> None:
        """Stops every group (the app's shutdown); their members end."""
        tasks = [group.task for group in self._groups.values() if group.task is not None]
        self._groups.clear()
        await stop_tasks(*tasks)

    async def membership(
        self, key: Hashable, operation: Subscribing, answers: Answers
    ) -> AsyncIterator[Any]:
        """A member's part: its events go straight to its outbox, so this yields nothing; it
        returns when the group ends and raises SLOW_CONSUMER if the member fell behind."""
        member = _Member(
            operation.outbox(),
            orjson.dumps({"id": operation.id, "type": operation.message_type}).decode()[:-1]
            + ',"payload":',
            asyncio.get_running_loop().create_future(),
        )
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key)
            group.task = asyncio.create_task(
                self._run(group, answers),
                name=f"live group {key!r:.80}",
                context=contextvars.Context(),
            )
        group.members.add(member)
        try:
            error = await asyncio.shield(member.ended)
        finally:
            self._leave(group, member)
        if error is not None:
            raise error
        return
        yield  # an async generator that yields nothing

    def _leave(self, group: _Group, member: _Member) -> None:
        if not member.ended.done():
            member.withdrawn = True
            member.ended.set_result(None)
        group.members.discard(member)
        if not group.members and self._groups.get(group.key) is group:
            del self._groups[group.key]
            if group.task is not None:
                group.task.cancel()

    async def _run(self, group: _Group, answers: Answers) -> None:
        error: BaseException | None = None
        stream = answers()
        try:
            async for payload in stream:
                for member in list(group.members):
                    self._deliver(group, member, payload)
                # The writers' turn before the next event: a burst read from the hub without
                # a pause would fill every outbox and cut off members that keep up.
                await asyncio.sleep(0)
        except Exception as exc:  # every member ends with it (coded by its own stream)
            logger.exception("live group failed", extra={"group": repr(group.key)[:200]})
            error = exc
        finally:
            if self._groups.get(group.key) is group:
                del self._groups[group.key]
            for member in group.members:
                if not member.ended.done():
                    member.ended.set_result(error)
            # Closed now, not whenever it is collected: the feed stops with its last subscriber.
            await stream.aclose()  # type: ignore[attr-defined]

    def _deliver(self, group: _Group, member: _Member, payload: str) -> None:
        if member.pending >= QUEUE_SIZE - 1:
            # As a hub subscriber this far behind: it stops with a coded error, the others go on.
            group.members.discard(member)
            member.ended.set_result(
                SubscriptionLimit(
                    f"this subscriber fell {QUEUE_SIZE} events behind and was cut off; "
                    "subscribe again (with the last cursor to miss nothing)",
                    "SLOW_CONSUMER",
                )
            )
            return
        member.outbox.push(member, member.prefix + payload + "}")


def encode_next_payload(data: Any, errors: list[Any] | None, extensions: Any) -> str:
    """An event message's payload as strawberry sends it (`next`, or legacy `data`)."""
    payload: dict[str, Any] = {"data": data}
    if errors:
        payload["errors"] = [error.formatted for error in errors]
    if extensions:
        payload["extensions"] = extensions
    return orjson.dumps(payload).decode()
