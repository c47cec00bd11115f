"""SQL Race parameter samples (`…/parameters/{p1,p2}/{frequencyHz}/data`, `/count`,
`/timeRanges`) as columns, paged transparently up to a bound (reference: data endpoints)."""

from __future__ import annotations

import asyncio
import math
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from ..errors import BadUserInput, UpstreamRejected, UpstreamUnavailable
from ._values import text, typed_or_json

if TYPE_CHECKING:
    from .sqlrace import SqlRaceProvider

__all__ = [
    "Aggregation",
    "SampleQuery",
    "SampleSeriesRecord",
    "TimeRangeRecord",
    "read_count",
    "read_samples",
    "read_time_ranges",
]

UPSTREAM = "sqlrace"
_TIME = operator.attrgetter("Time")
_VALUES = operator.attrgetter("Values")
MAX_PARAMETERS = 20
MAX_FREQUENCY_HZ = 10_000.0
# [d.]hh:mm[:ss[.fffffff]]: a day count for sessions that run past midnight.
_TIME_OF_DAY = re.compile(r"^(?:\d{1,2}\.)?\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?$")
_PARAMETER = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


class Aggregation(Enum):
    """The server-side aggregations SQL Race offers for a lower `frequencyHz` (reference)."""

    FIRST = "First"
    MEAN = "Mean"
    MIN = "Min"
    MAX = "Max"


@dataclass(frozen=True)
class SampleQuery:
    """What to read: validated on construction, so nothing odd reaches a URL."""

    connection: str
    session_key: str
    parameters: tuple[str, ...]
    frequency_hz: float
    aggregation: Aggregation
    start: str | None = None
    end: str | None = None
    lap: int | None = None

    def __post_init__(self) -> None:
        if not 0 < len(self.parameters) <= MAX_PARAMETERS:
            raise BadUserInput(
                f"`parameters` takes 1 to {MAX_PARAMETERS} parameter ids", field="parameters"
            )
        for parameter in self.parameters:
            if not _PARAMETER.match(parameter):
                raise BadUserInput(
                    f"{parameter[:50]!r} is not a parameter id (1-200 printable characters)",
                    field="parameters",
                )
        if not (math.isfinite(self.frequency_hz) and 0 < self.frequency_hz <= MAX_FREQUENCY_HZ):
            raise BadUserInput(
                f"`frequencyHz` must be more than 0 and at most {MAX_FREQUENCY_HZ:g}",
                field="frequencyHz",
            )
        for name, value in (("from", self.start), ("to", self.end)):
            if value is not None and not _TIME_OF_DAY.match(value):
                raise BadUserInput(
                    f"`{name}` is a time of day like 10:34 or 10:34:05.25", field=name
                )
        if self.lap is not None and not 0 <= self.lap <= 100_000:
            raise BadUserInput("`lap` is a lap number, 0 or more", field="lap")

    def path(self, resource: str = "") -> str:
        """`…/parameters/{p1,p2}/{hz}/data[/resource]`: each id one encoded item (ids hold
        `:`; `;` carries the aggregation), commas between them as the API lists them."""
        ids = ",".join(quote(f"{p};{self.aggregation.value}", safe="") for p in self.parameters)
        hz = f"{self.frequency_hz:g}"
        tail = f"/{resource}" if resource else ""
        return f"parameters/{ids}/{quote(hz, safe='')}/data{tail}"

    def query(self, extra: str = "") -> str:
        params = []
        if self.start is not None:
            params.append(f"from={quote(self.start, safe=':')}")
        if self.end is not None:
            params.append(f"to={quote(self.end, safe=':')}")
        if self.lap is not None:
            params.append(f"lap={self.lap}")
        if extra:
            params.append(extra)
        return "&".join(params)


@dataclass(frozen=True, slots=True)
class SampleSeriesRecord:
    """Samples in time order: `times` as the server writes them (time of day), one column of
    values per parameter, in the order asked."""

    times: list[str]
    channels: list[tuple[str, list[float | None]]]

    @property
    def count(self) -> int:
        return len(self.times)


@dataclass(frozen=True, slots=True)
class TimeRangeRecord:
    start_time: str | None
    end_time: str | None
    span: str | None


def _value(values: Any, parameter: str, aggregation: Aggregation) -> float | None:
    if not isinstance(values, dict):
        return None
    found = values.get(parameter, values.get(f"{parameter};{aggregation.value}"))
    if isinstance(found, bool) or not isinstance(found, int | float):
        return None
    return float(found)


class SampleRow(msgspec.Struct, gc=False):
    """One sample as the data endpoint writes it; decoding a page into these skips building
    a dict per row and checking each value's type afterwards."""

    Time: str
    Values: dict[str, float | None]


# A page as `SampleRow`s; any other JSON (an odd sample, an error) as orjson decodes it.
decode_page = typed_or_json(msgspec.json.Decoder(list[SampleRow]))


def _typed_column(values: list[dict[str, float | None]], keys: tuple[str, str]) -> list[Any]:
    # One key for every sample is the usual answer: one C-level pass per parameter.
    for key in keys:
        try:
            return list(map(operator.itemgetter(key), values))
        except KeyError:
            continue
    first, second = keys
    return [v.get(first, v.get(second)) for v in values]


def to_series(rows: Sequence[Any], query: SampleQuery) -> SampleSeriesRecord:
    # A page decodes to SampleRows whole, or (one odd sample) to plain JSON whole.
    if rows and type(rows[0]) is SampleRow:
        values = list(map(_VALUES, rows))
        return SampleSeriesRecord(
            list(map(_TIME, rows)),
            [
                (p, _typed_column(values, (p, f"{p};{query.aggregation.value}")))
                for p in query.parameters
            ],
        )
    kept = [r for r in rows if isinstance(r, dict) and isinstance(r.get("Time"), str)]
    return SampleSeriesRecord(
        [r["Time"] for r in kept],
        [
            (p, [_value(r.get("Values"), p, query.aggregation) for r in kept])
            for p in query.parameters
        ],
    )


async def read_count(provider: SqlRaceProvider, query: SampleQuery) -> int:
    payload = await provider.read_session(
        query.connection, query.session_key, query.path("count"), query.query()
    )
    if isinstance(payload, bool) or not isinstance(payload, int) or payload < 0:
        raise UpstreamUnavailable(UPSTREAM, "sqlrace sent a sample count that is not a count")
    return payload


async def read_samples(
    provider: SqlRaceProvider, query: SampleQuery, *, page_size: int, max_samples: int
) -> SampleSeriesRecord:
    """Every page, fetched together once the count says how many there are (at most
    `max_samples`: beyond, a coded error says to narrow the window or lower the rate)."""
    total = await read_count(provider, query)
    if total > max_samples:
        raise UpstreamRejected(
            UPSTREAM,
            f"this request covers {total} samples per parameter, more than the {max_samples} "
            "one answer may hold: narrow it with from/to or lap, or lower frequencyHz",
        )
    pages = max(1, math.ceil(total / page_size))
    first = provider.first_page

    async def page(number: int) -> SampleSeriesRecord:
        body = await provider.read_session(
            query.connection,
            query.session_key,
            query.path(),
            query.query(f"page={first + number}&pageSize={page_size}"),
            decoder=decode_page,
        )
        if not isinstance(body, list):
            raise UpstreamUnavailable(UPSTREAM, "sqlrace sent samples that are not a list")
        # Columns as soon as the page arrives: its rows are freed before the others land.
        return to_series(body, query)

    return _joined(await asyncio.gather(*(page(n) for n in range(pages))), query)


def _joined(parts: Sequence[SampleSeriesRecord], query: SampleQuery) -> SampleSeriesRecord:
    if len(parts) == 1:
        return parts[0]
    return SampleSeriesRecord(
        [time for part in parts for time in part.times],
        [
            (parameter, [v for part in parts for v in part.channels[index][1]])
            for index, parameter in enumerate(query.parameters)
        ],
    )


async def read_time_ranges(provider: SqlRaceProvider, query: SampleQuery) -> list[TimeRangeRecord]:
    payload = await provider.read_session(
        query.connection, query.session_key, query.path("timeRanges"), query.query()
    )
    if not isinstance(payload, list):
        raise UpstreamUnavailable(UPSTREAM, "sqlrace sent time ranges that are not a list")
    return [
        TimeRangeRecord(text(r.get("StartTime")), text(r.get("EndTime")), text(r.get("Span")))
        for r in payload
        if isinstance(r, dict)
    ]
