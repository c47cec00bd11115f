"""Operator inputs shared by every `<Type>Filter`, and their translation to `FilterSpec`."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import strawberry

from ..errors import BadUserInput
from ..filtering import Condition, FilterSpec

__all__ = [
    "BooleanFilter",
    "DateTimeFilter",
    "FloatFilter",
    "IntFilter",
    "KeyFilter",
    "StringFilter",
    "to_filter_spec",
]

# Bounds the upstream URL and the local work one filter can cause.
MAX_IN_VALUES = 100


@strawberry.input(description="Integer operators; all given operators must hold (AND).")
class IntFilter:
    eq: int | None = None
    in_: list[int] | None = strawberry.field(default=None, name="in")
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None


@strawberry.input(
    description="Key operators: like IntFilter, plus `latest` for the most recent one."
)
class KeyFilter:
    eq: int | None = None
    in_: list[int] | None = strawberry.field(default=None, name="in")
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None
    latest: bool | None = strawberry.field(
        default=None,
        description="The key of the latest session that has started (or its meeting).",
    )


@strawberry.input(description="Float operators; all given operators must hold (AND).")
class FloatFilter:
    eq: float | None = None
    in_: list[float] | None = strawberry.field(default=None, name="in")
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@strawberry.input(description="Exact, case-sensitive string match.")
class StringFilter:
    eq: str | None = None
    in_: list[str] | None = strawberry.field(default=None, name="in")


@strawberry.input
class BooleanFilter:
    eq: bool | None = None


@strawberry.input(description="Instant bounds; all given bounds must hold (AND).")
class DateTimeFilter:
    gt: datetime | None = None
    gte: datetime | None = None
    lt: datetime | None = None
    lte: datetime | None = None


def _condition(name: str, operators: Any) -> Condition:
    values = {f.name: getattr(operators, f.name) for f in dataclasses.fields(operators)}
    in_values = values.pop("in_", None)
    if in_values is not None and len(in_values) > MAX_IN_VALUES:
        raise BadUserInput(f"filter.{name}.in takes at most {MAX_IN_VALUES} values", field=name)
    latest = bool(values.pop("latest", None))
    return Condition(
        in_=tuple(in_values) if in_values is not None else None,
        latest=latest,
        **{key: value for key, value in values.items() if value is not None},
    )


def to_filter_spec(filter_input: object | None) -> FilterSpec:
    """A `<Type>Filter` input as a hashable spec; its Python field names are upstream names."""
    if filter_input is None:
        return ()
    spec: list[tuple[str, Condition]] = []
    for field in dataclasses.fields(filter_input):  # type: ignore[arg-type]
        operators = getattr(filter_input, field.name)
        if operators is None:
            continue
        condition = _condition(field.name, operators)
        if not condition.is_empty:
            spec.append((field.name, condition))
    return tuple(spec)
