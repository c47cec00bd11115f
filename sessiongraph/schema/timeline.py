"""The cross-source `sessions` root field: `SessionConnection` of `Session`s from every source."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from ..errors import BadUserInput
from ..providers.openf1 import F1SessionRecord
from ..providers.sqlrace import SqlRaceSessionRecord
from ..resolvers import timeline as resolve
from .context import Info, subselections
from .guidebook import GuidebookSession
from .openf1 import F1Session
from .pagination import PageInfo
from .session import Session, SessionSource
from .sqlrace import SqlRaceSession

__all__ = ["SessionConnection", "SessionEdge", "TimelineQuery"]


@strawberry.type
class SessionEdge:
    cursor: str
    node: Session


@strawberry.type(description="A page of the cross-source timeline.")
class SessionConnection:
    edges: list[SessionEdge]
    page_info: PageInfo
    total_count: int | None = strawberry.field(
        description="Sessions in the window from every source read. Asking for it makes each "
        "source read the whole window; null when a source failed (the count would be wrong)."
    )

    @strawberry.field(description="The sessions of this page, without cursors.")
    def nodes(self) -> list[Session]:
        return [edge.node for edge in self.edges]


def _node(record: resolve.SessionRecord) -> Session:
    if isinstance(record, F1SessionRecord):
        return F1Session.from_record(record)
    if isinstance(record, SqlRaceSessionRecord):
        return SqlRaceSession.from_record(record)
    return GuidebookSession.from_record(record)


@strawberry.type
class TimelineQuery:
    """The root field over every source at once."""

    @strawberry.field(
        description="Sessions of every configured source (or those in `sources`) that overlap "
        "[from, to), merged in start order (ties: OpenF1, Guidebook, SQL Race, then each "
        f"source's key). `first` is at most {resolve.MAX_FIRST} and defaults to "
        f"{resolve.DEFAULT_FIRST}. A source that fails, or is asked for but not configured, "
        "adds an error naming it (extensions.upstream) and the other sources' sessions are "
        "still returned. Null, with BAD_USER_INPUT, for arguments that cannot be right."
    )
    async def sessions(
        self,
        info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        sources: list[SessionSource] | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> SessionConnection | None:
        if to <= from_:
            raise BadUserInput("`to` must be after `from`", field="to")
        limit = resolve.DEFAULT_FIRST if first is None else first
        if not 0 <= limit <= resolve.MAX_FIRST:
            raise BadUserInput(f"`first` must lie between 0 and {resolve.MAX_FIRST}", field="first")
        position = resolve.decode_position(after) if after is not None else None
        page = await resolve.timeline(
            info,
            resolve.Window(from_, to),
            [s.value for s in sources] if sources is not None else None,
            position,
            limit,
            count=bool(subselections(info, "totalCount")),
        )
        edges = [
            SessionEdge(cursor=resolve.encode_position(i.position), node=_node(i.record))
            for i in page.items
        ]
        return SessionConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=page.total,
        )
