"""OpenF1's live topics: the order (and cursors) of row versions."""

from __future__ import annotations

from datetime import UTC, datetime

from sessiongraph.live.openf1 import TOPICS, _Merger, decode_cursor
from sessiongraph.providers.openf1 import F1LapRecord

START = datetime(2025, 12, 7, 13, 9, 27, 972000, tzinfo=UTC)


def lap(number: int, duration: float | None = None, start: datetime = START) -> F1LapRecord:
    return F1LapRecord(9839, 1276, 1, number, start, duration)


def test_a_lap_s_completion_orders_after_its_start_and_the_next_lap_s_start() -> None:
    merger = _Merger(TOPICS["laps"])
    [started] = merger.take([lap(5)])
    [completed] = merger.take([lap(5, 89.0)])
    assert started.cursor != completed.cursor
    assert started.order < completed.order  # resuming after the start gives the completion
    assert decode_cursor(completed.cursor) == completed.order
    # Completion happens at start + duration: after a lap that began earlier than that.
    [next_start] = merger.take([lap(6, start=START.replace(minute=10, second=56, microsecond=0))])
    assert next_start.order < completed.order


def test_an_unchanged_row_is_no_event_and_a_corrected_one_is() -> None:
    merger = _Merger(TOPICS["laps"])
    merger.take([lap(5, 89.0)])
    assert merger.take([lap(5, 89.0)]) == []
    [corrected] = merger.take([lap(5, 89.5)])
    assert corrected.value.lap_duration == 89.5


def test_lap_numbers_order_as_numbers() -> None:
    merger = _Merger(TOPICS["laps"])
    events = merger.take([lap(10), lap(9)])  # at one start time, the tie goes by lap number
    assert [event.value.lap_number for event in events] == [9, 10]
