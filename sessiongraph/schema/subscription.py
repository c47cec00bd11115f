"""The root `Subscription` type: OpenF1's live topics, a guide's session changes, SQL Race's
live sessions."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator
from enum import Enum
from typing import Annotated, Any

import strawberry

from ..live import ChangeKind as LiveChangeKind
from ..live import LiveSessionKind as LiveKind
from ..live import SessionStatus as LiveStatus
from ..resolvers import subscriptions as resolve
from .context import Info
from .guidebook import GuidebookSession
from .ids import encode_id
from .openf1 import F1Session
from .openf1_data import (
    F1Lap,
    Interval,
    Overtake,
    PitStop,
    Position,
    RaceControlMessage,
    Stint,
    TeamRadio,
    WeatherSample,
)
from .shared_events import shared_events
from .sqlrace import SqlRaceSession

__all__ = ["Subscription"]


@strawberry.enum(
    description="A session's state as OpenF1's data shows it: STARTED once race control has "
    "spoken, FINISHED once its results are published."
)
class SessionStatus(Enum):
    SCHEDULED = LiveStatus.SCHEDULED.value
    STARTED = LiveStatus.STARTED.value
    FINISHED = LiveStatus.FINISHED.value
    CANCELLED = LiveStatus.CANCELLED.value


@strawberry.enum(description="What happened to a Guidebook session.")
class ChangeKind(Enum):
    CREATED = LiveChangeKind.CREATED.value
    UPDATED = LiveChangeKind.UPDATED.value
    DELETED = LiveChangeKind.DELETED.value


@strawberry.enum(description="APPEARED in the live list, UPDATED (laps or state), ENDED (left it).")
class LiveSessionKind(Enum):
    APPEARED = LiveKind.APPEARED.value
    UPDATED = LiveKind.UPDATED.value
    ENDED = LiveKind.ENDED.value


@strawberry.type(description="A session's state: now when subscribing, then each change.")
class F1SessionStatusEvent:
    session_key: int
    status: SessionStatus
    session: F1Session


@strawberry.type(description="A Guidebook session created, updated or deleted.")
class GuidebookSessionChange:
    kind: ChangeKind
    guidebook_id: int
    node_id: strawberry.ID
    session: GuidebookSession | None = strawberry.field(description="Null once deleted.")


@strawberry.type(description="A live SQL Race session appearing, growing or ending.")
class SqlRaceLiveSessionChange:
    kind: LiveSessionKind
    lap_count: int = strawberry.field(description="Laps recorded so far.")
    session: SqlRaceSession


_AFTER = (
    "Resume after this event (its `extensions.cursor`; SSE clients send `Last-Event-ID`): "
    "nothing missed, nothing twice."
)


def _openf1_topic(endpoint: str, kind: type[Any], description: str, *, per_driver: bool) -> Any:
    """One OpenF1 live topic as a subscription field: `sessionKey` or `latest`, `after`, and
    `driverNumber` where rows are per driver."""

    async def events(
        self: Any,
        info: Info,
        session_key: int | None = None,
        latest: bool = False,
        driver_number: int | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[Any, None]:
        async for record in resolve.openf1_events(
            info, endpoint, session_key, latest, after, driver_number
        ):
            # One value per event for all subscribers: their answers are computed once.
            yield shared_events.value(record, kind.from_record)

    events.__annotations__ = {
        "info": Info,
        "session_key": int | None,
        "latest": bool,
        "driver_number": int | None,
        "after": Annotated[str | None, strawberry.argument(description=_AFTER)],
        "return": AsyncGenerator[kind, None],  # type: ignore[valid-type]
    }
    if not per_driver:
        signature = inspect.signature(events)
        kept = [p for p in signature.parameters.values() if p.name != "driver_number"]
        events.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
    return strawberry.subscription(resolver=events, description=description)


@strawberry.type
class Subscription:
    race_control = _openf1_topic(
        "race_control",
        RaceControlMessage,
        "Each new race-control message of the session, in publication order.",
        per_driver=False,
    )
    f1_laps = _openf1_topic(
        "laps", F1Lap, "Each lap as it is started, completed or corrected.", per_driver=True
    )
    f1_positions = _openf1_topic(
        "position", Position, "Each change of a driver's position.", per_driver=True
    )
    f1_intervals = _openf1_topic(
        "intervals", Interval, "Gaps to the leader and the car ahead (races).", per_driver=True
    )
    f1_pit_stops = _openf1_topic(
        "pit", PitStop, "Each pit-lane visit, and its times once known.", per_driver=True
    )
    f1_stints = _openf1_topic(
        "stints", Stint, "Each stint as it starts and grows by a lap.", per_driver=True
    )
    f1_weather = _openf1_topic(
        "weather", WeatherSample, "Each weather sample (about one a minute).", per_driver=False
    )
    f1_team_radio = _openf1_topic(
        "team_radio", TeamRadio, "Each team-radio recording.", per_driver=True
    )
    f1_overtakes = _openf1_topic(
        "overtakes", Overtake, "Each pass (races; OpenF1 may miss some).", per_driver=False
    )

    @strawberry.subscription(
        description="The session's state now (SCHEDULED, STARTED), then each change; "
        "completes once it is FINISHED (its results are published) or CANCELLED."
    )
    async def f1_session_status(
        self, info: Info, session_key: int | None = None, latest: bool = False
    ) -> AsyncGenerator[F1SessionStatusEvent, None]:
        async for record in resolve.openf1_statuses(info, session_key, latest):
            yield F1SessionStatusEvent(
                session_key=record.session_key,
                status=SessionStatus(record.status.value),
                session=F1Session.from_record(record.session),
            )

    @strawberry.subscription(
        description="Each session of the guide created, updated or deleted: through this "
        "gateway, in Guidebook Builder (webhooks), or found by polling when no webhook is set."
    )
    async def guidebook_session_changes(
        self, info: Info, guide_id: int
    ) -> AsyncGenerator[GuidebookSessionChange, None]:
        async for change in resolve.guidebook_changes(info, guide_id):
            yield GuidebookSessionChange(
                kind=ChangeKind(change.kind.value),
                guidebook_id=change.session_id,
                node_id=strawberry.ID(encode_id("GuidebookSession", change.session_id)),
                session=(
                    GuidebookSession.from_record(change.session)
                    if change.session is not None
                    else None
                ),
            )

    @strawberry.subscription(
        description="The connection's live sessions as they are now (APPEARED), then each "
        "appearing, growing (laps, state) or ending."
    )
    async def sql_race_live_sessions(
        self, info: Info, connection: str
    ) -> AsyncGenerator[SqlRaceLiveSessionChange, None]:
        async for change in resolve.sqlrace_live_sessions(info, connection):
            yield SqlRaceLiveSessionChange(
                kind=LiveSessionKind(change.kind.value),
                lap_count=change.laps,
                session=SqlRaceSession.from_record(change.session),
            )
