"""One execution per event, document and variables, shared by every subscriber."""

from __future__ import annotations

import asyncio

from sessiongraph.schema.shared_events import SharedEvents


class Record:
    def __init__(self, n: int) -> None:
        self.n = n


def test_a_source_is_built_once_and_only_its_values_are_shared() -> None:
    shared = SharedEvents()
    record = Record(1)
    built: list[int] = []

    def build(source: Record) -> dict[str, int]:
        built.append(source.n)
        return {"n": source.n}

    first, second = shared.value(record, build), shared.value(record, build)
    assert first is second
    assert built == [1]
    assert shared.is_shared(first)
    assert not shared.is_shared({"n": 1})  # an equal value built elsewhere is not


async def test_an_answer_is_computed_once_per_key_and_awaited_by_all() -> None:
    shared = SharedEvents()
    value = shared.value(Record(1), lambda r: {"n": r.n})
    runs: list[str] = []

    async def execute(key: str) -> str:
        runs.append(key)
        await asyncio.sleep(0.01)
        return f"answer {key}"

    answers = await asyncio.gather(
        *(shared.result(value, (key,), lambda key=key: execute(key)) for key in "aaab")
    )
    assert answers == ["answer a", "answer a", "answer a", "answer b"]
    assert runs == ["a", "b"]
    assert (shared.executed, shared.reused) == (2, 2)


async def test_one_subscriber_leaving_does_not_cancel_the_others_answer() -> None:
    shared = SharedEvents()
    value = shared.value(Record(1), lambda r: r.n)

    async def execute() -> str:
        await asyncio.sleep(0.05)
        return "done"

    leaving = asyncio.ensure_future(shared.result(value, ("k",), execute))
    staying = asyncio.ensure_future(shared.result(value, ("k",), execute))
    await asyncio.sleep(0.01)
    leaving.cancel()
    assert await staying == "done"


def test_old_events_are_forgotten() -> None:
    shared = SharedEvents(max_events=2)
    values = [shared.value(Record(n), lambda r: [r.n]) for n in range(3)]
    assert not shared.is_shared(values[0])
    assert shared.is_shared(values[2])
