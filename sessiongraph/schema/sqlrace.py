"""SQL Race types: `Connection`, `SqlRaceSession` with its `Lap`s, `SessionDetail`s and
`Parameter`s, and their root fields."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Self

import strawberry

from ..errors import BadUserInput
from ..filtering import FilterSpec
from ..providers.sqlrace import (
    ConnectionRecord,
    LapRecord,
    ParameterRecord,
    SessionDetailRecord,
    SqlRaceSessionRecord,
    parse_offset,
)
from ..providers.sqlrace_samples import Aggregation, SampleQuery, SampleSeriesRecord
from ..resolvers import sqlrace as resolve
from .context import Info
from .filters import DateTimeFilter, IntFilter, StringFilter, to_filter_spec
from .ids import encode_id
from .nodes import Node, register_node
from .pagination import PageInfo, encode_cursor, page_window
from .records import copy_record
from .series import FloatColumn, StringColumn
from .session import Session, SessionSource

__all__ = [
    "Connection",
    "Lap",
    "Parameter",
    "SessionDetail",
    "SqlRaceQuery",
    "SqlRaceSession",
    "SqlRaceSessionConnection",
    "SqlRaceSessionEdge",
    "SqlRaceSessionFilter",
]

_INSTANTS = (
    "Offsets count from midnight of the recording day in the session's time zone, as the "
    "reference infers (not verified against a real server); null when that is unknown."
)


@strawberry.input(description="SQL Race session conditions; all given fields must hold (AND).")
class SqlRaceSessionFilter:
    key: StringFilter | None = None
    identifier: StringFilter | None = None
    session_type: StringFilter | None = None
    state: StringFilter | None = None
    state_code: IntFilter | None = None
    laps_count: IntFilter | None = None
    time_of_recording: DateTimeFilter | None = None
    starts_at: DateTimeFilter | None = None
    ends_at: DateTimeFilter | None = None


@strawberry.type(description="A name/value pair describing a session (Driver, Car, Circuit...).")
class SessionDetail:
    name: str
    value: str | None

    @classmethod
    def from_record(cls, record: SessionDetailRecord) -> Self:
        return copy_record(cls, record)


def _at(midnight: datetime | None, offset: str | None) -> datetime | None:
    span = parse_offset(offset)
    return midnight + span if midnight is not None and span is not None else None


@strawberry.type(description="A lap of a SQL Race session.")
class Lap:
    number: int
    name: str | None = strawberry.field(description="e.g. Out Lap, Lap 16, In Lap.")
    start_time: str | None = strawberry.field(
        description="Time of day as the server sends it, [d.]HH:MM:SS.fffffff."
    )
    end_time: str | None = strawberry.field(description="Like startTime.")
    lap_time: str | None = strawberry.field(description="Duration, HH:MM:SS.fffffff.")
    lap_seconds: float | None = strawberry.field(description="lapTime in seconds.")
    count_for_fastest_lap: bool | None
    starts_at: datetime | None = strawberry.field(
        description=f"startTime as an instant. {_INSTANTS}"
    )
    ends_at: datetime | None = strawberry.field(description=f"endTime as an instant. {_INSTANTS}")

    @classmethod
    def from_record(cls, record: LapRecord, midnight: datetime | None) -> Self:
        duration = parse_offset(record.lap_time)
        return copy_record(
            cls,
            record,
            lap_seconds=duration / timedelta(seconds=1) if duration is not None else None,
            starts_at=_at(midnight, record.start_time),
            ends_at=_at(midnight, record.end_time),
        )


@strawberry.type(description="A parameter (channel of data) recorded in a SQL Race session.")
class Parameter:
    name: str
    identifier: str | None = strawberry.field(
        description="With its group, e.g. vCar:Chassis; null from servers before 2019."
    )
    description: str | None
    units: str | None
    format: str | None
    minimum_value: float | None
    maximum_value: float | None
    parent_parameter_group: str | None
    frequency: float | None = strawberry.field(description="Hz.")

    @classmethod
    def from_record(cls, record: ParameterRecord) -> Self:
        return copy_record(cls, record)


@strawberry.enum(description="How SQL Race reduces the samples of each interval (reference).")
class SampleAggregation(Enum):
    FIRST = "First"
    MEAN = "Mean"
    MIN = "Min"
    MAX = "Max"


@strawberry.type(description="One parameter's values, one per sample of its series.")
class SampleChannel:
    parameter: str = strawberry.field(description="The parameter id, e.g. vCar:Chassis.")
    values: FloatColumn


@strawberry.type(description="A continuous range with data (…/data/timeRanges).")
class SampleTimeRange:
    start_time: str | None
    end_time: str | None
    span: str | None


@strawberry.type(description="SQL Race samples as columns: one time column, one per parameter.")
class SampleSeries:
    count: int
    time: StringColumn = strawberry.field(
        description="Each sample's time of day as the server writes it (HH:MM:SS.fffffff)."
    )
    channels: list[SampleChannel]
    _query: strawberry.Private[SampleQuery]

    @classmethod
    def from_record(cls, record: SampleSeriesRecord, query: SampleQuery) -> Self:
        return cls(
            count=record.count,
            time=StringColumn(record.times),
            channels=[
                SampleChannel(parameter=p, values=FloatColumn(v)) for p, v in record.channels
            ],
            _query=query,
        )

    @strawberry.field(description="The continuous ranges with data for the same request.")
    async def time_ranges(self, info: Info) -> list[SampleTimeRange] | None:
        ranges = await resolve.sample_time_ranges(info, self._query)
        return [copy_record(SampleTimeRange, r) for r in ranges]


@strawberry.federation.type(
    keys=["connectionName key", "id"],
    description="A session recorded in SQL Race (McLaren / Motion Applied).",
)
class SqlRaceSession(Session):
    name: str | None = strawberry.field(
        description="The Identifier; the Session Name detail is among `details`."
    )
    starts_at: datetime | None = strawberry.field(
        description=f"startTime as an instant; null for a session never filled (all-zero "
        f"times). {_INSTANTS}"
    )
    ends_at: datetime | None = strawberry.field(
        description=f"endTime as an instant; a day later when endTime is before startTime. "
        f"{_INSTANTS}"
    )
    key: str = strawberry.field(description="The session's GUID, whichever shape it came in.")
    connection_name: str = strawberry.field(description="The connection it was read from.")
    identifier: str | None
    time_of_recording: datetime | None = strawberry.field(
        description="The server sends a local time without offset; it is read in timeZone "
        "(or the configured default zone when the server sends none)."
    )
    time_zone: str | None = strawberry.field(description="As the server sends it, e.g. UTC.")
    session_type: str | None
    start_time: str | None = strawberry.field(
        description="Time of day as the server sends it, [d.]HH:MM:SS.fffffff; see startsAt."
    )
    end_time: str | None = strawberry.field(description="Like startTime; see endsAt.")
    laps_count: int | None
    session_id: int | None = strawberry.field(
        description="The server's numeric `Id` (`id` is the global ID)."
    )
    state: str | None = strawberry.field(
        description="Created, Historical, Live... as the server names it. When the server "
        "sends a number, the name configured for it in SQLRACE_STATE_NAMES, else null."
    )
    state_code: int | None = strawberry.field(
        description="The number the server sent as State, raw (the vendor never published "
        "their meaning); null when it sent a name."
    )
    _midnight: strawberry.Private[datetime | None]

    @classmethod
    def from_record(cls, record: SqlRaceSessionRecord) -> Self:
        return copy_record(
            cls,
            record,
            id=encode_id("SqlRaceSession", f"{record.connection}/{record.key}"),
            name=record.identifier,
            source=SessionSource.SQLRACE,
            connection_name=record.connection,
            _midnight=record.midnight,
        )

    @strawberry.field(
        description="Name/value details (Session Name, Driver, Car...); null with an error "
        "if unavailable."
    )
    async def details(self, info: Info) -> list[SessionDetail] | None:
        records = await resolve.details(info, self.connection_name, self.key)
        return [SessionDetail.from_record(r) for r in records]

    @strawberry.field(description="The session's laps; null with an error if unavailable.")
    async def laps(self, info: Info) -> list[Lap] | None:
        records = await resolve.laps(info, self.connection_name, self.key)
        return [Lap.from_record(r, self._midnight) for r in records]

    @strawberry.field(description="Recorded parameters; null with an error if unavailable.")
    async def parameters(self, info: Info) -> list[Parameter] | None:
        records = await resolve.parameters(info, self.connection_name, self.key)
        return [Parameter.from_record(r) for r in records]

    @strawberry.field(description="The connection it was read from.")
    async def connection(self, info: Info) -> Connection | None:
        return Connection.from_record(await resolve.connection(info, self.connection_name))

    @strawberry.field(
        description="Parameter samples at `frequencyHz` (…/parameters/{ids}/{frequencyHz}/data) "
        "as columns, every page read (at most SQLRACE_MAX_SAMPLES per parameter; beyond, an "
        "error says to narrow the window). When the recorded rate is higher, SQL Race "
        "aggregates each interval with `aggregation`. `from`/`to` are times of day as the "
        "server takes them (e.g. 10:34 or 10:34:05.25); `lap` keeps one lap."
    )
    async def samples(
        self,
        info: Info,
        parameters: list[str],
        frequency_hz: float,
        aggregation: SampleAggregation = SampleAggregation.MEAN,
        from_: Annotated[str | None, strawberry.argument(name="from")] = None,
        to: str | None = None,
        lap: int | None = None,
    ) -> SampleSeries | None:
        query = SampleQuery(
            self.connection_name,
            self.key,
            tuple(parameters),
            frequency_hz,
            Aggregation[aggregation.name],
            from_,
            to,
            lap,
        )
        return SampleSeries.from_record(await resolve.samples(info, query), query)


@strawberry.type
class SqlRaceSessionEdge:
    cursor: str
    node: SqlRaceSession


@strawberry.type(
    description="A page of a connection's sessions, newest first as the server lists them."
)
class SqlRaceSessionConnection:
    edges: list[SqlRaceSessionEdge]
    page_info: PageInfo
    _connection: strawberry.Private[str]
    _spec: strawberry.Private[FilterSpec]

    @strawberry.field(description="The sessions of this page, without cursors.")
    def nodes(self) -> list[SqlRaceSession]:
        return [edge.node for edge in self.edges]

    @strawberry.field(
        description="Sessions matching the filter in the whole connection. The server reports "
        "no totals, so asking for this reads every page."
    )
    async def total_count(self, info: Info) -> int | None:
        return await resolve.count_sessions(info, self._connection, self._spec)


@strawberry.federation.type(
    keys=["name", "id"],
    description="A SQL Race data connection: a database or SQLite file of sessions.",
)
class Connection(Node):
    name: str = strawberry.field(
        description="What `connection(name:)` takes: the Identifier, else the FriendlyName."
    )
    identifier: str | None
    friendly_name: str | None = strawberry.field(description="Absent from later servers.")
    is_sqlite: bool | None
    database_name: str | None = strawberry.field(
        description="The server database's name, or for SQLite the .ssn2 file's name without "
        "its directories (the full path only when SQLRACE_EXPOSE_INFRASTRUCTURE is set)."
    )
    server_name: str | None = strawberry.field(
        description="Internal infrastructure: null unless SQLRACE_EXPOSE_INFRASTRUCTURE is set."
    )
    root_path: str | None = strawberry.field(
        description="Filestream root; null unless SQLRACE_EXPOSE_INFRASTRUCTURE is set."
    )

    @classmethod
    def from_record(cls, record: ConnectionRecord) -> Self:
        return cls(
            id=encode_id("Connection", record.name),
            name=record.name,
            identifier=record.identifier,
            friendly_name=record.friendly_name,
            is_sqlite=record.is_sqlite,
            database_name=record.database_name,
            server_name=record.server_name,
            root_path=record.root_path,
        )

    @strawberry.field(
        description="The connection's sessions, newest first as the server lists them; pages "
        "are read from the server only as far as needed. Null with an error if unavailable."
    )
    async def sessions(
        self,
        info: Info,
        first: int | None = resolve.DEFAULT_FIRST,
        after: str | None = None,
        filter: SqlRaceSessionFilter | None = None,
    ) -> SqlRaceSessionConnection | None:
        spec = to_filter_spec(filter)
        start, count = page_window(
            first, after, default=resolve.DEFAULT_FIRST, maximum=resolve.MAX_FIRST
        )
        page = await resolve.sessions(info, self.name, spec, start, count)
        edges = [
            SqlRaceSessionEdge(cursor=encode_cursor(position), node=SqlRaceSession.from_record(r))
            for position, r in page.edges
        ]
        return SqlRaceSessionConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            _connection=self.name,
            _spec=spec,
        )


@strawberry.type
class SqlRaceQuery:
    """Root fields over SQL Race."""

    @strawberry.field(
        description="The server's data connections. Null, with a coded error, when SQL Race "
        "cannot answer or is not configured; other root fields still do."
    )
    async def connections(self, info: Info) -> list[Connection] | None:
        return [Connection.from_record(r) for r in await resolve.connections(info)]

    @strawberry.field(description="One data connection by name (Identifier or FriendlyName).")
    async def connection(self, info: Info, name: str) -> Connection | None:
        return Connection.from_record(await resolve.connection(info, name))

    @strawberry.field(description="One recorded session by connection name and session key.")
    async def sql_race_session(
        self, info: Info, connection: str, key: str
    ) -> SqlRaceSession | None:
        return SqlRaceSession.from_record(await resolve.session(info, connection, key))


async def _connection_node(info: Info, key: str) -> Connection:
    return Connection.from_record(await resolve.connection(info, key))


async def _session_node(info: Info, key: str) -> SqlRaceSession:
    # Session keys are GUIDs, so the last `/` ends the connection name, which may hold one.
    connection, _, session_key = key.rpartition("/")
    if not connection or not session_key:
        raise BadUserInput(f"{key!r} is not a SqlRaceSession key", field="id")
    return SqlRaceSession.from_record(await resolve.session(info, connection, session_key))


register_node("Connection", ["name"], _connection_node)
register_node("SqlRaceSession", ["connectionName", "key"], _session_node)
