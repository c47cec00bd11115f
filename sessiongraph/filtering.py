"""Source-neutral filter conditions: what a GraphQL filter asks, evaluated locally or by providers.

A `FilterSpec` is hashable so DataLoaders can use it in their keys. Operators on one field
combine with AND, and so do fields.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Bound", "Condition", "FilterSpec", "matches"]


@dataclass(frozen=True)
class Bound:
    value: Any
    inclusive: bool


@dataclass(frozen=True)
class Condition:
    """Operators on one field; None means the operator is not used."""

    eq: Any = None
    in_: tuple[Any, ...] | None = None
    gt: Any = None
    gte: Any = None
    lt: Any = None
    lte: Any = None
    # Only for keys: the upstream resolves it (OpenF1's `latest`); it cannot be checked locally.
    latest: bool = False

    # Worked out once per condition: a filter is matched against every record of a list.
    @functools.cached_property
    def is_empty(self) -> bool:
        return self == Condition()

    @functools.cached_property
    def _match_all(self) -> bool:
        return self.is_empty or (self.latest and self == Condition(latest=True))

    @functools.cached_property
    def _allowed(self) -> tuple[Any, ...] | None:
        return self.candidates()

    def lower(self) -> Bound | None:
        """The tightest lower bound of gt/gte (AND semantics)."""
        return _tightest(self.gt, self.gte, prefer_greater=True)

    def upper(self) -> Bound | None:
        """The tightest upper bound of lt/lte (AND semantics)."""
        return _tightest(self.lt, self.lte, prefer_greater=False)

    def in_range(self, value: Any) -> bool:
        lower, upper = self.lower(), self.upper()
        if lower is not None and not (
            value > lower.value or (lower.inclusive and value == lower.value)
        ):
            return False
        return upper is None or value < upper.value or (upper.inclusive and value == upper.value)

    def candidates(self) -> tuple[Any, ...] | None:
        """The exact values allowed by eq/in (and the range), or None if eq/in are unused."""
        if self.eq is None and self.in_ is None:
            return None
        values: Iterable[Any] = (self.eq,) if self.eq is not None else ()
        if self.in_ is not None:
            allowed = dict.fromkeys(self.in_)
            values = [v for v in values if v in allowed] if self.eq is not None else allowed
        return tuple(v for v in dict.fromkeys(values) if self.in_range(v))

    def unsatisfiable(self) -> bool:
        """True when no value can pass, so no upstream request is worth sending."""
        candidates = self.candidates()
        if candidates is not None:
            return not candidates
        lower, upper = self.lower(), self.upper()
        if lower is None or upper is None:
            return False
        if lower.value == upper.value:
            return not (lower.inclusive and upper.inclusive)
        return bool(lower.value > upper.value)

    def matches(self, value: Any) -> bool:
        if self._match_all:
            return True
        if value is None:
            return False
        allowed = self._allowed
        if allowed is not None:
            return value in allowed
        return self.in_range(value)


def _tightest(strict: Any, inclusive: Any, *, prefer_greater: bool) -> Bound | None:
    if strict is None and inclusive is None:
        return None
    if strict is None:
        return Bound(inclusive, True)
    if inclusive is None:
        return Bound(strict, False)
    if strict == inclusive:
        return Bound(strict, False)
    tighter_is_strict = (strict > inclusive) if prefer_greater else (strict < inclusive)
    return Bound(strict, False) if tighter_is_strict else Bound(inclusive, True)


FilterSpec = tuple[tuple[str, Condition], ...]


def matches(record: object, spec: FilterSpec) -> bool:
    """Whether a domain record (attributes named as upstream fields) passes every condition."""
    return all(condition.matches(getattr(record, field, None)) for field, condition in spec)
