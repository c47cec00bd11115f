"""Typed reads of upstream JSON values: the value if it has the expected JSON type, else None;
whole answers decoded into typed structs when they fit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import orjson

__all__ = ["flag", "integer", "number", "text", "typed_or_json"]


def typed_or_json(decoder: msgspec.json.Decoder[Any]) -> Callable[[bytes], Any]:
    """A body decoder: the answer as `decoder`'s typed structs when every value fits, else as
    plain JSON (for the careful reading of odd rows, or an error body); a body that is not
    JSON raises `orjson.JSONDecodeError`, as the HTTP client expects."""

    def decode(body: bytes) -> Any:
        try:
            return decoder.decode(body)
        except msgspec.DecodeError:
            return orjson.loads(body)

    return decode


def text(value: Any) -> str | None:
    return value if type(value) is str else None


def integer(value: Any) -> int | None:
    return value if type(value) is int else None


def number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def flag(value: Any) -> bool | None:
    return value if type(value) is bool else None
