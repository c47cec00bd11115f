"""Builds a strawberry type from a provider record whose field names it shares."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["copy_record"]

T = TypeVar("T")

# Per type and computed names: the fields copied by name and one getter reading them all,
# worked out once (no reflection per object).
_COPIERS: dict[tuple[type[Any], frozenset[str]], tuple[tuple[str, ...], Callable[[Any], Any]]] = {}


def copy_record(cls: type[T], record: object, **computed: Any) -> T:
    """`cls(...)` with every field taken from `record` by name, except those in `computed`."""
    key = (cls, frozenset(computed))
    found = _COPIERS.get(key)
    if found is None:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        # Resolver-backed fields are not constructor arguments (init=False): skip them.
        names = tuple(f.name for f in fields if f.init and f.name not in computed)
        getter = operator.attrgetter(*names) if names else (lambda _: ())
        found = _COPIERS[key] = (names, getter)
    names, getter = found
    values = getter(record)
    if len(names) == 1:
        values = (values,)
    return cls(**dict(zip(names, values, strict=True)), **computed)
