"""Local evaluation of filter conditions (AND semantics across operators)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sessiongraph.filtering import Bound, Condition


def test_tightest_bounds_win() -> None:
    condition = Condition(gt=3, gte=5, lt=10, lte=8)
    assert condition.lower() == Bound(5, True)
    assert condition.upper() == Bound(8, True)
    assert Condition(gt=5, gte=5).lower() == Bound(5, False)


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        (Condition(eq=3), 3, True),
        (Condition(eq=3), 4, False),
        (Condition(in_=(1, 2)), 2, True),
        (Condition(in_=(1, 2), eq=3), 3, False),
        (Condition(in_=(1, 2, 3), gte=2), 1, False),
        (Condition(gt=5, lt=3), 6, False),
        (Condition(gte=4, lte=7), 7, True),
        (Condition(gte=4, lte=7), None, False),
        (Condition(), None, True),
    ],
)
def test_matches(condition: Condition, value: object, expected: bool) -> None:
    assert condition.matches(value) is expected


@pytest.mark.parametrize(
    ("condition", "empty"),
    [
        (Condition(gt=5, lt=3), True),
        (Condition(gt=5, lte=5), True),
        (Condition(gte=5, lte=5), False),
        (Condition(eq=1, in_=(2, 3)), True),
        (Condition(in_=()), True),
        (Condition(eq=9, lt=5), True),
        (Condition(gte=datetime(2024, 1, 1, tzinfo=UTC)), False),
    ],
)
def test_unsatisfiable(condition: Condition, empty: bool) -> None:
    assert condition.unsatisfiable() is empty
