"""The DateTime scalar: ISO 8601 instants that always carry their UTC offset."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.types.scalar import ScalarDefinition

__all__ = ["DATETIME_SCALAR", "in_utc_range", "parse_datetime", "serialize_datetime"]


def serialize_datetime(value: datetime) -> str:
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return moment.isoformat()


def parse_datetime(value: object) -> datetime:
    """Accept full ISO 8601 date-times; a missing offset means UTC. Dates alone are refused."""
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string such as 2023-09-16T12:00:00Z")
    text = value.strip()
    if "T" not in text.upper() and " " not in text:
        raise ValueError(
            f"DateTime needs a time of day, e.g. {text}T00:00:00Z; a date alone is ambiguous"
        )
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 date-time such as 2023-09-16T12:00:00+02:00"
        ) from None
    return in_utc_range(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


def in_utc_range(moment: datetime) -> datetime:
    """`moment` if its UTC instant lies in years 1-9999, where every comparison of it works."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{moment.isoformat()} lies outside the years 1 to 9999 once converted to UTC"
        ) from None
    return moment


DATETIME_SCALAR: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description="An instant in ISO 8601 with its UTC offset, e.g. 2023-07-29T15:05:00+00:00.",
    specified_by_url="https://datatracker.ietf.org/doc/html/rfc3339#section-5.6",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)
