"""A bare strawberry app over the sandbox's meetings and sessions in memory: no upstream, no
cache, no limits, no middleware. `bench/overhead.py` measures sessiongraph against it.

Run by `overhead.py` as `python bench/bare_strawberry.py PORT`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import strawberry
import uvicorn
from strawberry.asgi import GraphQL

DATA = Path(__file__).resolve().parents[1] / "sessiongraph" / "sandbox" / "data" / "openf1"
MEETINGS: list[dict[str, Any]] = json.loads((DATA / "meetings.json").read_text())
SESSIONS: list[dict[str, Any]] = json.loads((DATA / "sessions.json").read_text())
BY_MEETING: dict[int, list[dict[str, Any]]] = {}
for row in SESSIONS:
    BY_MEETING.setdefault(row["meeting_key"], []).append(row)
MEETING_BY_KEY = {row["meeting_key"]: row for row in MEETINGS}


@strawberry.type
class Meeting:
    meeting_key: int
    meeting_name: str | None
    year: int | None

    @strawberry.field
    def sessions(self) -> list[F1Session]:
        return [F1Session.of(r) for r in BY_MEETING.get(self.meeting_key, ())]

    @classmethod
    def of(cls, row: dict[str, Any]) -> Meeting:
        return cls(
            meeting_key=row["meeting_key"], meeting_name=row["meeting_name"], year=row["year"]
        )


@strawberry.type
class F1Session:
    session_key: int
    session_name: str | None
    meeting_key: int

    @strawberry.field
    def meeting(self) -> Meeting:
        return Meeting.of(MEETING_BY_KEY[self.meeting_key])

    @classmethod
    def of(cls, row: dict[str, Any]) -> F1Session:
        return cls(
            session_key=row["session_key"],
            session_name=row["session_name"],
            meeting_key=row["meeting_key"],
        )


@strawberry.input
class IntFilter:
    eq: int | None = None


@strawberry.input
class MeetingFilter:
    year: IntFilter | None = None


@strawberry.type
class Query:
    @strawberry.field
    def meetings(self, filter: MeetingFilter | None = None) -> list[Meeting]:
        year = filter.year.eq if filter and filter.year else None
        return [Meeting.of(r) for r in MEETINGS if year is None or r["year"] == year]


app = GraphQL(strawberry.Schema(query=Query), graphql_ide=None)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
