"""Typed reads of upstream JSON values: the value if it has the expected JSON type, else None."""

from __future__ import annotations

from typing import Any

__all__ = ["flag", "integer", "number", "text"]


def text(value: Any) -> str | None:
    return value if type(value) is str else None


def integer(value: Any) -> int | None:
    return value if type(value) is int else None


def number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def flag(value: Any) -> bool | None:
    return value if type(value) is bool else None
