"""Groups of WebSocket subscribers: one run of the document for all members, each member's frames
in order on its connection's outbox, leaving, slow consumers, failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sessiongraph.errors import SubscriptionLimit
from sessiongraph.live import Groups, Outbox, Subscribing
from sessiongraph.live._hub import QUEUE_SIZE


class Wire:
    """A connection's socket: what was written, and a gate a test may close to stall it."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.open = asyncio.Event()
        self.open.set()
        self.failure: BaseException | None = None

    async def send_text(self, text: str) -> None:
        await self.open.wait()
        if self.failure is not None:
            raise self.failure
        self.sent.append(json.loads(text))

    def ids(self, kind: str = "next") -> list[str]:
        return [m["id"] for m in self.sent if m.get("type") == kind]


class Answers:
    """A group's run: payloads published on demand, how many runs started and were closed."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        self.runs = 0
        self.closed = 0

    async def __call__(self) -> AsyncIterator[str]:
        self.runs += 1
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.closed += 1

    def publish(self, *numbers: int) -> None:
        for n in numbers:
            self.queue.put_nowait(json.dumps({"data": {"n": n}}))


def operation(id_: str, outbox: Outbox) -> Subscribing:
    return Subscribing(id_, "subscription { n }", None, None, lambda: outbox)


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


def member(groups: Groups, op: Subscribing, answers: Answers) -> asyncio.Task[list[Any]]:
    async def run() -> list[Any]:
        return [item async for item in groups.membership("key", op, answers)]

    return asyncio.ensure_future(run())


def numbers(wire: Wire, id_: str) -> list[int]:
    return [m["payload"]["data"]["n"] for m in wire.sent if m["id"] == id_ and m["type"] == "next"]


async def test_one_run_for_every_member_each_frame_with_its_own_id() -> None:
    groups, answers = Groups(), Answers()
    wires = [Wire(), Wire()]
    outboxes = [Outbox(wire.send_text) for wire in wires]
    tasks = [member(groups, operation(f"m{n}", outboxes[n % 2]), answers) for n in range(6)]
    await settle()
    answers.publish(1, 2, 3)
    await settle()
    assert answers.runs == 1
    assert groups.members == 6
    for n in range(6):
        assert numbers(wires[n % 2], f"m{n}") == [1, 2, 3]
    answers.queue.put_nowait(None)  # the topic is over: every member ends without error
    assert await asyncio.gather(*tasks) == [[]] * 6
    assert groups.members == 0
    assert answers.closed == 1
    for outbox in outboxes:
        await outbox.close()


async def test_a_member_that_leaves_gets_nothing_more_and_the_last_stops_the_run() -> None:
    groups, answers, wire = Groups(), Answers(), Wire()
    outbox = Outbox(wire.send_text)
    first = member(groups, operation("a", outbox), answers)
    second = member(groups, operation("b", outbox), answers)
    await settle()
    answers.publish(1)
    await until(lambda: len(wire.sent) == 2)
    wire.open.clear()  # frames wait on the outbox (a's 2 may already be on its way)
    answers.publish(2, 3)
    await settle()
    first.cancel()  # the client's `complete`: what was queued for it is dropped
    await settle()
    wire.open.set()
    answers.publish(4)
    await until(lambda: numbers(wire, "b") == [1, 2, 3, 4])
    assert numbers(wire, "a") in ([1], [1, 2])
    assert answers.closed == 0
    second.cancel()
    await until(lambda: answers.closed == 1)
    assert groups.members == 0
    await outbox.close()


async def test_the_protocols_own_message_waits_behind_queued_frames() -> None:
    groups, answers, wire = Groups(), Answers(), Wire()
    outbox = Outbox(wire.send_text)
    task = member(groups, operation("a", outbox), answers)
    await settle()
    wire.open.clear()
    answers.publish(1, 2)
    await settle()
    sending = asyncio.ensure_future(outbox.send(json.dumps({"id": "a", "type": "complete"})))
    await settle()
    assert not sending.done()
    wire.open.set()
    await sending
    assert [m["type"] for m in wire.sent] == ["next", "next", "complete"]
    task.cancel()
    await outbox.close()


async def test_a_slow_member_is_cut_off_with_a_coded_error_and_the_others_go_on() -> None:
    groups, answers = Groups(), Answers()
    slow, fast = Wire(), Wire()
    slow.open.clear()  # never reads
    outboxes = Outbox(slow.send_text), Outbox(fast.send_text)
    stalled = member(groups, operation("slow", outboxes[0]), answers)
    going = member(groups, operation("fast", outboxes[1]), answers)
    await settle()
    answers.publish(*range(QUEUE_SIZE + 5))
    await settle(50)
    with pytest.raises(SubscriptionLimit) as cut:
        await stalled
    assert cut.value.code == "SUBSCRIPTION_LIMIT"
    assert cut.value.reason == "SLOW_CONSUMER"
    await until(lambda: len(numbers(fast, "fast")) == QUEUE_SIZE + 5)
    assert numbers(fast, "fast") == list(range(QUEUE_SIZE + 5))
    assert groups.members == 1
    going.cancel()
    for outbox in outboxes:
        await outbox.close()


async def test_a_failing_run_ends_every_member_with_its_error() -> None:
    groups, answers, wire = Groups(), Answers(), Wire()
    outbox = Outbox(wire.send_text)
    tasks = [member(groups, operation(f"m{n}", outbox), answers) for n in range(3)]
    await settle()
    answers.queue.put_nowait(RuntimeError("upstream gone"))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert groups.members == 0
    await outbox.close()


async def test_a_broken_socket_fails_the_outbox_for_every_later_message() -> None:
    wire = Wire()
    outbox = Outbox(wire.send_text)
    wire.failure = ConnectionResetError("gone")
    with pytest.raises(ConnectionResetError):
        await outbox.send("{}")
    with pytest.raises(ConnectionResetError):
        await outbox.send("{}")
    await outbox.close()


async def test_closing_the_groups_ends_their_runs_and_members() -> None:
    groups, answers, wire = Groups(), Answers(), Wire()
    outbox = Outbox(wire.send_text)
    task = member(groups, operation("a", outbox), answers)
    await settle()
    await groups.close()
    assert await task == []
    assert answers.closed == 1
    await outbox.close()


async def test_closing_while_a_message_is_on_its_way_fails_its_sender_instead_of_hanging() -> None:
    wire = Wire()
    wire.open.clear()
    outbox = Outbox(wire.send_text)
    sending = [asyncio.ensure_future(outbox.send("{}")) for _ in range(2)]
    await settle()
    await outbox.close()
    for task in sending:
        with pytest.raises(ConnectionError):
            await task
