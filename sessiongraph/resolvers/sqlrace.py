"""SQL Race resolvers: GraphQL arguments in, records from loaders and the provider out."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadUserInput, NotFound
from ..filtering import FilterSpec, matches
from ..loaders import SqlRaceLoaders
from ..providers.sqlrace import (
    ConnectionRecord,
    LapRecord,
    ParameterRecord,
    SessionDetailRecord,
    SqlRaceSessionRecord,
)
from ..providers.sqlrace_samples import SampleQuery, SampleSeriesRecord, TimeRangeRecord
from ..schema.context import Info

__all__ = [
    "DEFAULT_FIRST",
    "MAX_FIRST",
    "SessionSlice",
    "connection",
    "connections",
    "count_sessions",
    "details",
    "laps",
    "parameters",
    "session",
    "sessions",
]

DEFAULT_FIRST = 50
MAX_FIRST = 500


@dataclass(frozen=True)
class SessionSlice:
    """One page of a connection's sessions: (position, session) pairs and what lies beyond."""

    edges: list[tuple[int, SqlRaceSessionRecord]]
    has_next_page: bool
    has_previous_page: bool


def _loaders(info: Info) -> SqlRaceLoaders:
    providers = info.context.providers
    if providers.sqlrace is None:
        raise providers.not_configured("sqlrace")
    return info.context.loaders.sqlrace


async def connections(info: Info) -> list[ConnectionRecord]:
    return await _loaders(info).connections()


async def connection(info: Info, name: str) -> ConnectionRecord:
    found = await _loaders(info).connection.load(name)
    if found is None:
        raise NotFound(f"no SQL Race connection named {name!r}")
    return found


async def session(info: Info, connection_name: str, key: str) -> SqlRaceSessionRecord:
    loaders = _loaders(info)
    found: SqlRaceSessionRecord | None = None
    if loaders.provider.single_session_route:
        found = await loaders.provider.session(connection_name, key)
    else:
        # The reference documents no GET for one session: page the list until it turns up.
        wanted = key.lower()  # GUIDs, which the server writes in either case
        async for _, record in loaders.sessions(connection_name):
            if record.key.lower() == wanted:
                found = record
                break
    if found is None:
        raise NotFound(f"no session {key!r} in SQL Race connection {connection_name!r}")
    return found


async def sessions(
    info: Info, connection_name: str, spec: FilterSpec, start: int, first: int
) -> SessionSlice:
    """Up to `first` matching sessions from upstream position `start` on."""
    loaders = _loaders(info)
    provider = loaders.provider
    # Paging stops after `max_pages` pages, so no cursor this gateway gave out lies beyond:
    # one that does was made up, and must not reach the server as a page number.
    if start > provider.max_pages * provider.page_size:
        raise BadUserInput("`after` is not a cursor from this list", field="after")
    edges: list[tuple[int, SqlRaceSessionRecord]] = []
    has_next = False
    # One match beyond `first` tells whether there is a next page.
    async for position, record in loaders.sessions(connection_name, start):
        if matches(record, spec):
            if len(edges) == first:
                has_next = True
                break
            edges.append((position, record))
    return SessionSlice(edges, has_next, start > 0)


async def count_sessions(info: Info, connection_name: str, spec: FilterSpec) -> int:
    """Reads every page of the connection: the upstream reports no totals."""
    return sum([matches(r, spec) async for _, r in _loaders(info).sessions(connection_name)])


async def details(info: Info, connection_name: str, key: str) -> list[SessionDetailRecord]:
    return await _loaders(info).details.load((connection_name, key))


async def laps(info: Info, connection_name: str, key: str) -> list[LapRecord]:
    return await _loaders(info).laps.load((connection_name, key))


async def parameters(info: Info, connection_name: str, key: str) -> list[ParameterRecord]:
    return await _loaders(info).parameters.load((connection_name, key))


async def samples(info: Info, query: SampleQuery) -> SampleSeriesRecord:
    return await _loaders(info).provider.samples(query)


async def sample_time_ranges(info: Info, query: SampleQuery) -> list[TimeRangeRecord]:
    return await _loaders(info).provider.sample_time_ranges(query)
