"""McLaren SQL Race REST "Query API" (reference `sqlrace.md`): connections, sessions, details, laps
and parameters as typed records, read tolerantly from either documented dialect."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from yarl import URL

from ..cache import Policy, uncached
from ..errors import NotFound, UpstreamRejected, UpstreamUnavailable
from ._auth import TokenFetcher, password_grant_fetcher
from ._http import UpstreamClient
from ._values import flag as _bool
from ._values import integer as _int
from ._values import number as _float
from ._values import text as _text
from .sqlrace_samples import (
    SampleQuery,
    SampleSeriesRecord,
    TimeRangeRecord,
    read_samples,
    read_time_ranges,
)

__all__ = [
    "ConnectionRecord",
    "LapRecord",
    "ParameterRecord",
    "SessionDetailRecord",
    "SqlRaceProvider",
    "SqlRaceSessionRecord",
    "parse_offset",
    "path_segment",
    "recorded_at",
    "sqlrace_token_fetcher",
]

UPSTREAM = "sqlrace"

# .NET TimeSpan text: [-][d.]hh:mm:ss[.fffffff]; days appear once a span passes 24 h.
_MAX_STATE_DIGITS = 18
_DRIVE = re.compile(r"^[A-Za-z]:")
_TIMESPAN = re.compile(r"^(-)?(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")


def parse_offset(value: Any) -> timedelta | None:
    """A `StartTime`/`EndTime`/`LapTime` span; sub-microsecond digits are dropped."""
    if type(value) is not str:
        return None
    match = _TIMESPAN.match(value.strip())
    if match is None:
        return None
    sign, days, hours, minutes, seconds, fraction = match.groups()
    span = timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        microseconds=int((fraction or "0").ljust(7, "0")[:6]),
    )
    return -span if sign else span


@functools.lru_cache(maxsize=64)
def time_zone(name: str) -> tzinfo | None:
    """An IANA name, `UTC`/`GMT`, or None when the server sent something we cannot place."""
    if name.strip().upper() in ("UTC", "GMT", "Z"):
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def recorded_at(value: Any, zone: tzinfo | None) -> datetime | None:
    """`TimeOfRecording` as an instant. It comes without an offset (7 fractional digits) and is
    read in the session's time zone; one that carries an offset (later dialects) keeps it."""
    if type(value) is not str:
        return None
    try:
        stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        return stamp
    return stamp.replace(tzinfo=zone) if zone is not None else None


def path_segment(value: str) -> str:
    """`value` percent-encoded as exactly one path segment.

    Every reserved character is encoded, and a name made only of dots (`.` or `..`) has them
    encoded too, since clients and servers resolve those segments away.
    """
    if not value:
        # `connections//sessions` would be another route wherever slashes are merged.
        raise NotFound("an empty name or key names nothing in SQL Race")
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded.strip(".") == "" else encoded


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """A data connection (§2); `name` is what routes take: Identifier, else FriendlyName."""

    name: str
    identifier: str | None = None
    friendly_name: str | None = None
    is_sqlite: bool | None = None
    database_name: str | None = None
    server_name: str | None = None
    root_path: str | None = None


@dataclass(frozen=True, slots=True)
class SqlRaceSessionRecord:
    """A recorded session of one connection (§3), with its offsets resolved to instants."""

    connection: str
    key: str
    identifier: str | None = None
    time_of_recording: datetime | None = None
    time_zone: str | None = None
    session_type: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    laps_count: int | None = None
    session_id: int | None = None
    state: str | None = None
    state_code: int | None = None
    # Midnight of the recording day in the session's zone: laps' offsets count from it too.
    midnight: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SessionDetailRecord:
    name: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class LapRecord:
    number: int
    name: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    lap_time: str | None = None
    count_for_fastest_lap: bool | None = None


@dataclass(frozen=True, slots=True)
class ParameterRecord:
    name: str
    identifier: str | None = None
    description: str | None = None
    units: str | None = None
    format: str | None = None
    minimum_value: float | None = None
    maximum_value: float | None = None
    parent_parameter_group: str | None = None
    frequency: float | None = None


def _fields(row: Any) -> dict[str, Any] | None:
    # Case-insensitive: the 2018 dialect writes PascalCase, the later ones camelCase.
    return {str(k).lower(): v for k, v in row.items()} if isinstance(row, dict) else None


def session_key(value: Any) -> str | None:
    """`Key` as `{"value": guid}` (seed shape) or a plain string (Metadata-page shape)."""
    if isinstance(value, dict):
        value = _fields(value).get("value")  # type: ignore[union-attr]
    return value if type(value) is str and value else None


def session_state(value: Any, names: Mapping[int, str]) -> tuple[str | None, int | None]:
    """(name, code): a name as sent; an integer named only through the configured table."""
    digits = value.strip().removeprefix("-") if type(value) is str else ""
    # ASCII only (`²` is a digit to str.isdigit, not to int) and short (int() refuses 4,300+).
    if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_STATE_DIGITS:
        value = int(value)
    if type(value) is int:
        return names.get(value), value
    return _text(value), None


def database_label(value: str | None, *, expose_infrastructure: bool) -> str | None:
    """`DatabaseName` as shown: for a SQLite connection it is the file's path, which tells
    where the server keeps its data, so only the file's name is shown unless infrastructure
    exposure is configured (a server database's name has no directories and stays)."""
    if value is None or expose_infrastructure:
        return value
    name = re.split(r"[/\\]", value.rstrip("/\\"))[-1]
    # `C:file.ssn2` is relative to the current directory of drive C.
    name = name.split(":")[-1] if _DRIVE.match(name) else name
    return name or None


def connection_record(row: Any, *, expose_infrastructure: bool) -> ConnectionRecord | None:
    f = _fields(row)
    if f is None:
        return None
    identifier, friendly = _text(f.get("identifier")), _text(f.get("friendlyname"))
    name = identifier or friendly
    if not name:
        return None
    return ConnectionRecord(
        name=name,
        identifier=identifier,
        friendly_name=friendly,
        is_sqlite=_bool(f.get("issqlite")),
        database_name=database_label(
            _text(f.get("databasename")), expose_infrastructure=expose_infrastructure
        ),
        server_name=_text(f.get("servername")) if expose_infrastructure else None,
        root_path=_text(f.get("rootpath")) if expose_infrastructure else None,
    )


def session_record(
    connection: str, row: Any, *, state_names: Mapping[int, str], default_zone: str
) -> SqlRaceSessionRecord | None:
    f = _fields(row)
    key = session_key(f.get("key")) if f is not None else None
    if f is None or key is None:
        return None
    zone_name = _text(f.get("timezone"))
    recorded = recorded_at(f.get("timeofrecording"), time_zone(zone_name or default_zone))
    # The offsets count from midnight of the recording day (reference §3 "Times", inferred).
    midnight = (
        datetime.combine(recorded.date(), time(), tzinfo=recorded.tzinfo) if recorded else None
    )
    start_text, end_text = _text(f.get("starttime")), _text(f.get("endtime"))
    start, end = parse_offset(start_text), parse_offset(end_text)
    starts_at = ends_at = None
    # All-zero offsets mark a session created but never filled: it has no start or end yet.
    if midnight is not None and start is not None and end is not None and (start or end):
        if end < start:
            end += timedelta(days=1)  # written as a time of day although it passed midnight
        starts_at, ends_at = midnight + start, midnight + end
    state, state_code = session_state(f.get("state"), state_names)
    return SqlRaceSessionRecord(
        connection=connection,
        key=key,
        identifier=_text(f.get("identifier")),
        time_of_recording=recorded,
        time_zone=zone_name,
        session_type=_text(f.get("sessiontype")),
        start_time=start_text,
        end_time=end_text,
        laps_count=_int(f.get("lapscount")),
        session_id=_int(f.get("id")),
        state=state,
        state_code=state_code,
        midnight=midnight,
        starts_at=starts_at,
        ends_at=ends_at,
    )


def detail_record(row: Any) -> SessionDetailRecord | None:
    f = _fields(row)
    name = _text(f.get("name")) if f is not None else None
    if f is None or name is None:
        return None
    value = f.get("value")
    return SessionDetailRecord(name, value if value is None else str(value))


def lap_record(row: Any) -> LapRecord | None:
    f = _fields(row)
    number = _int(f.get("number")) if f is not None else None
    if f is None or number is None:
        return None
    return LapRecord(
        number=number,
        name=_text(f.get("name")),
        start_time=_text(f.get("starttime")),
        end_time=_text(f.get("endtime")),
        lap_time=_text(f.get("laptime")),
        count_for_fastest_lap=_bool(f.get("countforfastestlap")),
    )


def parameter_record(row: Any) -> ParameterRecord | None:
    f = _fields(row)
    if f is None:
        return None
    identifier = _text(f.get("identifier"))
    # 2018 rows have only Name; 2019 ones add the `vCar:Chassis`-style Identifier.
    name = _text(f.get("name")) or identifier
    if name is None:
        return None
    return ParameterRecord(
        name=name,
        identifier=identifier,
        description=_text(f.get("description")),
        units=_text(f.get("units")),
        format=_text(f.get("format")),
        minimum_value=_float(f.get("minimumvalue")),
        maximum_value=_float(f.get("maximumvalue")),
        parent_parameter_group=_text(f.get("parentparametergroup")),
        frequency=_float(f.get("frequency")),
    )


def sqlrace_token_fetcher(
    client: UpstreamClient, root_url: str, username: str, password: str
) -> TokenFetcher:
    """`POST {root}/token`, form-encoded password grant (reference §1); about a day's token."""
    form = {"grant_type": "password", "username": username, "password": password}
    return password_grant_fetcher(client, URL(f"{root_url.rstrip('/')}/token"), form)


R = TypeVar("R")


class SqlRaceProvider:
    """Reads one SQL Race server; per-session reads share a concurrency cap."""

    name = UPSTREAM

    def __init__(
        self,
        client: UpstreamClient,
        *,
        page_size: int = 50,
        first_page: int = 0,
        max_pages: int = 1000,
        state_names: Mapping[int, str] | None = None,
        default_time_zone: str = "UTC",
        expose_infrastructure: bool = False,
        concurrency: int = 8,
        single_session_route: bool = False,
        samples_page_size: int = 50_000,
        max_samples: int = 2_000_000,
    ) -> None:
        self.client = client
        self.samples_page_size = samples_page_size
        self.max_samples = max_samples
        self.page_size = page_size
        self.first_page = first_page
        self.max_pages = max_pages
        self.state_names = dict(state_names or {})
        self.default_time_zone = default_time_zone
        self.expose_infrastructure = expose_infrastructure
        self.single_session_route = single_session_route
        self._gate = asyncio.Semaphore(concurrency)
        self.in_flight = 0
        self.peak_in_flight = 0  # observed by tests of the cap

    async def connections(self) -> list[ConnectionRecord]:
        try:
            rows = await self._list("connections", missing="connections endpoint")
        except NotFound:
            raise UpstreamRejected(
                UPSTREAM,
                f"sqlrace has no {self.client.url('connections').path}; "
                "check SESSIONGRAPH_SQLRACE_API_PATH",
                status=404,
            ) from None
        return [r for r in map(self._connection, rows) if r is not None]

    async def connection(self, name: str) -> ConnectionRecord | None:
        try:
            row = await self._read(f"connections/{path_segment(name)}", f"connection {name!r}")
        except NotFound:
            return None
        return self._connection(row)

    async def sessions_page(self, connection: str, page: int) -> list[SqlRaceSessionRecord | None]:
        """One page (0-based here, whatever the server counts from) of a connection's sessions;
        None stands in for a row that could not be read, so positions stay stable."""
        if page >= self.max_pages:
            raise UpstreamRejected(
                UPSTREAM,
                f"sqlrace still sent full pages after {self.max_pages} pages of {connection!r}; "
                "raise SESSIONGRAPH_SQLRACE_MAX_PAGES if that is real",
            )
        query = f"page={page + self.first_page}&pageSize={self.page_size}"
        rows = await self._list(
            f"connections/{path_segment(connection)}/sessions",
            query,
            missing=f"connection {connection!r}",
        )
        return [self._session(connection, row) for row in rows]

    async def session(self, connection: str, key: str) -> SqlRaceSessionRecord | None:
        """One session by key; only with `single_session_route` (the reference has no such GET)."""
        try:
            row = await self._read(self._session_path(connection, key), f"session {key!r}")
        except NotFound:
            return None
        return self._session(connection, row)

    async def live_sessions(self, connection: str) -> list[SqlRaceSessionRecord]:
        """`…/sessions/live`, every page, never from the cache (a live subscription's poll)."""
        found: list[SqlRaceSessionRecord] = []
        for page in range(self.max_pages):
            query = f"page={page + self.first_page}&pageSize={self.page_size}"
            rows = await self._list(
                f"connections/{path_segment(connection)}/sessions/live",
                query,
                missing=f"connection {connection!r}",
                policy=uncached,
            )
            found.extend(r for r in (self._session(connection, row) for row in rows) if r)
            if len(rows) < self.page_size:
                break
        return found

    async def live_laps(self, connection: str, key: str) -> list[LapRecord]:
        """A recording session's laps as they are now, never from the cache."""
        async with self._gate:
            rows = await self._list(
                f"{self._session_path(connection, key)}/laps",
                missing=f"session {key!r} of connection {connection!r}",
                policy=uncached,
            )
        return [r for r in map(lap_record, rows) if r is not None]

    async def details(self, connection: str, key: str) -> list[SessionDetailRecord]:
        rows = await self._per_session(connection, key, "details")
        return [r for r in map(detail_record, rows) if r is not None]

    async def laps(self, connection: str, key: str) -> list[LapRecord]:
        rows = await self._per_session(connection, key, "laps")
        return [r for r in map(lap_record, rows) if r is not None]

    async def parameters(self, connection: str, key: str) -> list[ParameterRecord]:
        # The parameter list pages like the session list (§3), with the same page size.
        found: list[ParameterRecord] = []
        for page in range(self.max_pages):
            query = f"page={page + self.first_page}&pageSize={self.page_size}"
            rows = await self._per_session(connection, key, "parameters", query)
            found.extend(r for r in map(parameter_record, rows) if r is not None)
            if len(rows) < self.page_size:
                break
        return found

    def _connection(self, row: Any) -> ConnectionRecord | None:
        return connection_record(row, expose_infrastructure=self.expose_infrastructure)

    def _session(self, connection: str, row: Any) -> SqlRaceSessionRecord | None:
        return session_record(
            connection, row, state_names=self.state_names, default_zone=self.default_time_zone
        )

    def _session_path(self, connection: str, key: str) -> str:
        return f"connections/{path_segment(connection)}/sessions/{path_segment(key)}"

    async def samples(self, query: SampleQuery) -> SampleSeriesRecord:
        return await read_samples(
            self, query, page_size=self.samples_page_size, max_samples=self.max_samples
        )

    async def sample_time_ranges(self, query: SampleQuery) -> list[TimeRangeRecord]:
        return await read_time_ranges(self, query)

    async def read_session(
        self,
        connection: str,
        key: str,
        resource: str,
        query: str,
        decoder: Callable[[bytes], Any] = orjson.loads,
    ) -> Any:
        """Any JSON below one session (`resource` already encoded), within the concurrency cap."""
        async with self._gate:
            return await self._read(
                f"{self._session_path(connection, key)}/{resource}",
                f"data of session {key!r} of connection {connection!r}",
                query,
                decoder=decoder,
            )

    async def _per_session(
        self, connection: str, key: str, resource: str, query: str = ""
    ) -> list[Any]:
        async with self._gate:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                return await self._list(
                    f"{self._session_path(connection, key)}/{resource}",
                    query,
                    missing=f"session {key!r} of connection {connection!r}",
                )
            finally:
                self.in_flight -= 1

    async def _list(
        self, path: str, query: str = "", *, missing: str, policy: Policy | None = None
    ) -> list[Any]:
        payload = await self._read(path, missing, query, policy)
        if not isinstance(payload, list):
            raise UpstreamUnavailable(UPSTREAM, "sqlrace sent an unexpected response shape")
        return payload

    async def _read(
        self,
        path: str,
        missing: str,
        query: str = "",
        policy: Policy | None = None,
        *,
        decoder: Callable[[bytes], Any] = orjson.loads,
    ) -> Any:
        response = await self.client.get(path, query, policy=policy, decoder=decoder)
        if response.status == 404:
            # The server's 404 body is undocumented (§4): an unknown name and an unknown
            # route look the same, so both are reported as the thing we asked for.
            raise NotFound(f"sqlrace has no {missing}", upstream=UPSTREAM)
        if response.status >= 400:
            raise self.client.error_for(response)
        try:
            return response.json()
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnavailable(
                UPSTREAM, "sqlrace sent a response that is not JSON", status=response.status
            ) from exc
