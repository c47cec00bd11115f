"""Columnar series: each channel is one scalar holding the whole list, so a series of 100,000
samples costs about its serialization, not 100,000 completed GraphQL values."""

from __future__ import annotations

from typing import Any, NewType, Self

import strawberry
from strawberry.types.scalar import ScalarDefinition

from ..providers.openf1_telemetry import TelemetrySeries

__all__ = [
    "COLUMN_SCALARS",
    "CarDataSeries",
    "CarLocationSeries",
    "DateTimeColumn",
    "FloatColumn",
    "IntColumn",
    "StringColumn",
]


def _as_is(value: Any) -> Any:
    return value


def _output_only(value: Any) -> Any:
    raise ValueError("column scalars are output only")


IntColumn = NewType("IntColumn", list[Any])
FloatColumn = NewType("FloatColumn", list[Any])
DateTimeColumn = NewType("DateTimeColumn", list[Any])
StringColumn = NewType("StringColumn", list[Any])


def _column(name: str, what: str) -> ScalarDefinition:
    return strawberry.scalar(
        name=name,
        description=f"{what}, as one JSON array (null where a sample lacks the value); one "
        "entry per sample of its series, in the order of the series' time column.",
        serialize=_as_is,
        parse_value=_output_only,
    )


# For the schema's scalar_map: each column type and its definition.
COLUMN_SCALARS: dict[object, ScalarDefinition] = {
    IntColumn: _column("IntColumn", "Integers"),
    FloatColumn: _column("FloatColumn", "Numbers"),
    DateTimeColumn: _column(
        "DateTimeColumn", "RFC 3339 instants with their offset, as the upstream wrote them"
    ),
    StringColumn: _column("StringColumn", "Strings"),
}

_DOWNSAMPLED = (
    " With `everySeconds`, the first sample of each interval of that many seconds (counted "
    "from the first sample) is kept as measured; nothing is averaged."
)


@strawberry.type(
    description="A car's telemetry from OpenF1 `/v1/car_data` (about 3.7 samples a second), "
    "one column per channel." + _DOWNSAMPLED
)
class CarDataSeries:
    count: int
    date: DateTimeColumn
    speed: IntColumn = strawberry.field(description="km/h.")
    rpm: IntColumn
    n_gear: IntColumn = strawberry.field(description="0-8.")
    throttle: IntColumn = strawberry.field(description="Percent.")
    brake: IntColumn = strawberry.field(description="0 or 100 in OpenF1's data.")
    drs: IntColumn = strawberry.field(
        description="OpenF1's DRS codes 0-14 (8: eligible in the next zone, 10/12/14: open)."
    )

    @classmethod
    def from_series(cls, series: TelemetrySeries) -> Self:
        columns = {name: IntColumn(values) for name, values in series.channels.items()}
        return cls(count=series.count, date=DateTimeColumn(series.dates), **columns)


@strawberry.type(
    description="A car's position on track from OpenF1 `/v1/location` (about 3.7 samples a "
    "second; x, y, z in OpenF1's own units and arbitrary origin)." + _DOWNSAMPLED
)
class CarLocationSeries:
    count: int
    date: DateTimeColumn
    x: IntColumn
    y: IntColumn
    z: IntColumn

    @classmethod
    def from_series(cls, series: TelemetrySeries) -> Self:
        columns = {name: IntColumn(values) for name, values in series.channels.items()}
        return cls(count=series.count, date=DateTimeColumn(series.dates), **columns)
