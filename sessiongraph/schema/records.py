"""Builds a strawberry type from a provider record whose field names it shares."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["copy_record", "made_once"]

T = TypeVar("T")


# Per type and computed names, a builder compiled once: no reflection per object.
_BUILDERS: dict[tuple[type[Any], tuple[str, ...]], Callable[[Any, dict[str, Any]], Any]] = {}


def _builder(cls: type[Any], computed: tuple[str, ...]) -> Callable[[Any, dict[str, Any]], Any]:
    fields = dataclasses.fields(cls)
    # Resolver-backed fields are not constructor arguments (init=False): skip them.
    names = [f.name for f in fields if f.init and f.name not in computed]
    # Field names are identifiers (dataclass fields), so they can be spelled into source.
    values = "{" + ", ".join(f"{name!r}: record.{name}" for name in names) + "}"
    defaulted = any(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in fields
        if not f.init
    )
    slotted = any("__slots__" in vars(c) for c in cls.__mro__[:-1])
    if defaulted or slotted or hasattr(cls, "__post_init__"):
        body = f"return cls(**{values}, **computed)"
    else:
        # Attributes set at once: the generated __init__ and its keyword binding are skipped.
        body = f"made = new(cls)\n    made.__dict__.update({values}, **computed)\n    return made"
    namespace: dict[str, Any] = {"cls": cls, "new": object.__new__}
    exec(f"def build(record, computed):\n    {body}\n", namespace)  # noqa: S102
    build: Callable[[Any, dict[str, Any]], Any] = namespace["build"]
    return build


def copy_record(cls: type[T], record: object, **computed: Any) -> T:
    """`cls(...)` with every field taken from `record` by name, except those in `computed`."""
    key = (cls, tuple(computed))
    build = _BUILDERS.get(key)
    if build is None:
        build = _BUILDERS[key] = _builder(cls, key[1])
    made: T = build(record, computed)
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
