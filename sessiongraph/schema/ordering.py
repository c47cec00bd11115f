"""`orderBy`, `limit` and `offset` on lists: order inputs made from a record's own fields, and
the ordering and windowing applied to what the upstream sent."""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
from collections.abc import Sequence
from enum import Enum
from typing import Any, Protocol, TypeVar

import strawberry

from ..errors import BadUserInput

__all__ = [
    "MAX_LIMIT",
    "MAX_OFFSET",
    "OrderDirection",
    "OrderKey",
    "check_window",
    "order_input",
    "ordered_window",
]

MAX_LIMIT = 10_000
MAX_OFFSET = 100_000
_SORTABLE = (int, float, str, bool, datetime.datetime)
T = TypeVar("T")


@strawberry.enum
class OrderDirection(Enum):
    ASC = "asc"
    DESC = "desc"


class OrderKey(Protocol):
    """What every generated `<Type>Order` input holds."""

    field: Enum
    direction: OrderDirection


def _sortable_fields(record: type[Any]) -> list[str]:
    hints = typing.get_type_hints(record)
    names = []
    for f in dataclasses.fields(record):
        hint = hints.get(f.name)
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if any(option in _SORTABLE for option in options):
            names.append(f.name)
    return names


def order_input(name: str, record: type[Any], what: str) -> type[Any]:
    """`<name>Order { field: <name>OrderField!, direction: OrderDirection = ASC }`, whose
    fields are the record's scalar fields: a new upstream field is orderable by itself."""
    fields = _sortable_fields(record)
    members: type[Enum] = Enum(f"{name}OrderField", {f.upper(): f for f in fields})  # type: ignore[misc]
    field_enum = strawberry.enum(
        members, description=f"What {what} can be ordered by (their own fields)."
    )
    namespace = {
        "__annotations__": {"field": field_enum, "direction": OrderDirection},
        "direction": OrderDirection.ASC,
    }
    made = type(f"{name}Order", (), namespace)
    return strawberry.input(
        made,
        description="One ordering key; later keys break ties of earlier ones. Nulls come last "
        "in either direction.",
    )


def ordered_window(
    records: Sequence[T],
    order_by: Sequence[OrderKey] | None,
    limit: int | None,
    offset: int | None,
) -> list[T]:
    """`records` sorted by `order_by` (stable: upstream order breaks the remaining ties), then
    `offset` skipped and at most `limit` kept. The window was checked (`check_window`) before
    the records were fetched."""
    found = list(records)
    for key in reversed(order_by or ()):
        name = key.field.value
        descending = key.direction is OrderDirection.DESC
        present = [r for r in found if getattr(r, name, None) is not None]
        absent = [r for r in found if getattr(r, name, None) is None]
        present.sort(key=lambda r: getattr(r, name), reverse=descending)
        found = present + absent
    start = offset or 0
    return found[start : start + limit if limit is not None else None]


def check_window(limit: int | None, offset: int | None) -> None:
    """Refuses a window that cannot be right, before anything is fetched."""
    if limit is not None and not 0 <= limit <= MAX_LIMIT:
        raise BadUserInput(f"`limit` must lie between 0 and {MAX_LIMIT}", field="limit")
    if offset is not None and not 0 <= offset <= MAX_OFFSET:
        raise BadUserInput(f"`offset` must lie between 0 and {MAX_OFFSET}", field="offset")
