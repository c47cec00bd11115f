"""Builds a strawberry type from a provider record whose field names it shares."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["copy_record"]

T = TypeVar("T")

# Per type: the fields copied by name (those not given explicitly), worked out once.
_COPIED: dict[tuple[type[Any], frozenset[str]], tuple[str, ...]] = {}


def copy_record(cls: type[T], record: object, **computed: Any) -> T:
    """`cls(...)` with every field taken from `record` by name, except those in `computed`."""
    key = (cls, frozenset(computed))
    names = _COPIED.get(key)
    if names is None:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        # Resolver-backed fields are not constructor arguments (init=False): skip them.
        names = _COPIED[key] = tuple(f.name for f in fields if f.init and f.name not in computed)
    return cls(**{name: getattr(record, name) for name in names}, **computed)
