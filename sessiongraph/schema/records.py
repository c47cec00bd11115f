"""Builds a strawberry type from a provider record whose field names it shares."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["copy_record", "made_once"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class _Copier:
    names: tuple[str, ...]
    getter: Callable[[Any], Any]
    # The instance's attributes can be set at once (no __post_init__, no slots, no field
    # left to a default): the generated __init__ with its keyword binding is skipped.
    direct: bool


# Per type and computed names, worked out once: no reflection per object.
_COPIERS: dict[tuple[type[Any], frozenset[str]], _Copier] = {}


def _copier(cls: type[Any], computed: frozenset[str]) -> _Copier:
    fields = dataclasses.fields(cls)
    # Resolver-backed fields are not constructor arguments (init=False): skip them.
    names = tuple(f.name for f in fields if f.init and f.name not in computed)
    if len(names) == 1:
        name = names[0]
        getter: Callable[[Any], Any] = lambda record: (getattr(record, name),)  # noqa: E731
    else:
        getter = operator.attrgetter(*names) if names else (lambda _: ())
    defaulted = any(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in fields
        if not f.init
    )
    slotted = any("__slots__" in vars(c) for c in cls.__mro__[:-1])
    direct = not (defaulted or slotted or hasattr(cls, "__post_init__"))
    return _Copier(names, getter, direct)


def copy_record(cls: type[T], record: object, **computed: Any) -> T:
    """`cls(...)` with every field taken from `record` by name, except those in `computed`."""
    key = (cls, frozenset(computed))
    copier = _COPIERS.get(key)
    if copier is None:
        copier = _COPIERS[key] = _copier(cls, key[1])
    values = dict(zip(copier.names, copier.getter(record), strict=True))
    if not copier.direct:
        return cls(**values, **computed)
    made: T = object.__new__(cls)
    values.update(computed)
    made.__dict__.update(values)
    return made


def made_once(memo: dict[Any, Any], record: object, build: Callable[[Any], T]) -> T:
    """`build(record)` once per record object and builder in one request (`memo` is the
    request's): a season's 120 sessions name 23 meetings."""
    key = (build, id(record))
    found = memo.get(key)
    if found is not None and found[0] is record:
        made: T = found[1]
        return made
    made = build(record)
    memo[key] = (record, made)  # the record is kept, so its id is not reused meanwhile
    return made
