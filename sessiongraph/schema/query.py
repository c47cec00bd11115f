"""The root `Query` type."""

from __future__ import annotations

import strawberry

from ..resolvers import openf1 as resolve_openf1
from .context import Info
from .openf1 import F1Session, F1SessionFilter, Meeting, MeetingFilter

__all__ = ["Query"]


@strawberry.type
class Query:
    @strawberry.field(description="F1 meetings (Grand Prix and testing weekends), in start order.")
    async def meetings(self, info: Info, filter: MeetingFilter | None = None) -> list[Meeting]:
        return [Meeting.from_record(r) for r in await resolve_openf1.meetings(info, filter)]

    @strawberry.field(description="One meeting, by `key` or the `latest` one.")
    async def meeting(
        self, info: Info, key: int | None = None, latest: bool | None = False
    ) -> Meeting | None:
        return Meeting.from_record(await resolve_openf1.meeting(info, key, latest))

    @strawberry.field(description="F1 sessions, in start order.")
    async def f1_sessions(
        self, info: Info, filter: F1SessionFilter | None = None
    ) -> list[F1Session]:
        return [F1Session.from_record(r) for r in await resolve_openf1.f1_sessions(info, filter)]

    @strawberry.field(description="One F1 session, by `key` or the `latest` one.")
    async def f1_session(
        self, info: Info, key: int | None = None, latest: bool | None = False
    ) -> F1Session | None:
        return F1Session.from_record(await resolve_openf1.f1_session(info, key, latest))
