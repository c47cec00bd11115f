"""Guidebook types: `Guide`, `ScheduleTrack`, `Location`, `GuidebookSession` and their lists."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, Self, TypeVar

import strawberry

from ..errors import NotFound
from ..providers.guidebook import (
    GuidebookSessionRecord,
    GuideRecord,
    LocationAddress,
    LocationRecord,
    Page,
    ScheduleTrackRecord,
)
from ..resolvers import guidebook as resolve
from .context import Info
from .filters import DateTimeFilter, IntFilter, StringFilter, to_filter_spec
from .ids import encode_id, int_key
from .nodes import Node, register_node
from .ordering import OrderDirection
from .pagination import PageInfo, encode_cursor, page_info, page_window
from .records import copy_record
from .session import Session, SessionSource

__all__ = [
    "Guide",
    "GuideConnection",
    "GuidebookQuery",
    "GuidebookSession",
    "GuidebookSessionConnection",
    "GuidebookSessionFilter",
    "GuidebookSessionOrder",
    "Location",
    "ScheduleTrack",
]

GUIDEBOOK_ID = "The Guidebook id, as root fields and mutation inputs take it."


@strawberry.enum(description="What Guidebook can order sessions by.")
class GuidebookSessionOrderField(Enum):
    ID = "id"
    START_TIME = "start_time"
    END_TIME = "end_time"


@strawberry.input(description="One ordering key; later keys break ties of earlier ones.")
class GuidebookSessionOrder:
    field: GuidebookSessionOrderField
    direction: OrderDirection = OrderDirection.ASC


@strawberry.input(
    description="Session conditions; all given fields must hold (AND). One exact `id`, "
    "`importId` or `scheduleTracks` value is applied by Guidebook; other conditions make the "
    "gateway read the guide's whole session list."
)
class GuidebookSessionFilter:
    id: IntFilter | None = None
    import_id: StringFilter | None = None
    schedule_tracks: IntFilter | None = strawberry.field(
        default=None, description="Sessions in at least one track that passes."
    )
    start_time: DateTimeFilter | None = None
    end_time: DateTimeFilter | None = None


def _ordering(order_by: list[GuidebookSessionOrder] | None) -> list[str]:
    return [
        ("-" if order.direction is OrderDirection.DESC else "") + order.field.value
        for order in order_by or ()
    ]


@strawberry.type(description="The address of a Main Venue location.")
class Address:
    address: str | None
    street: str | None
    city: str | None
    state: str | None
    zipcode: str | None
    country: str | None

    @classmethod
    def from_record(cls, record: LocationAddress | None) -> Self | None:
        if record is None:
            return None
        return copy_record(cls, record)


@strawberry.federation.type(
    keys=["guidebookId", "id"], description="A Guidebook guide: one event's app content."
)
class Guide(Node):
    guidebook_id: int = strawberry.field(description=GUIDEBOOK_ID)
    created_at: datetime | None
    owner: int | None = strawberry.field(description="Account (user or organisation) id.")
    name: str | None
    short_name: str | None = strawberry.field(description="Used in the guide's web URL.")
    description_html: str | None
    start_date: datetime | None = strawberry.field(description="Null for ongoing guides.")
    end_date: datetime | None
    attendees_estimate: int | None
    timezone: str | None = strawberry.field(description="tz database name, e.g. US/Pacific.")
    home_screen_menuitem: int | None
    privacy: int | None = strawberry.field(
        description="1 public, 2 passphrase, 3 invite-only; null when Guidebook omits it."
    )
    redeem_code: str | None = strawberry.field(description="Passphrase for privacy 2.")
    category: list[int] = strawberry.field(description="GuideCategory ids.")

    @classmethod
    def from_record(cls, record: GuideRecord) -> Self:
        return copy_record(
            cls,
            record,
            id=encode_id("Guide", record.id),
            guidebook_id=record.id,
            category=list(record.category),
        )

    @strawberry.field(description="The guide's schedule tracks; null with an error if unavailable.")
    async def schedule_tracks(self, info: Info) -> list[ScheduleTrack] | None:
        records = await resolve.schedule_tracks(info, self.guidebook_id)
        return [ScheduleTrack.from_record(r) for r in records]

    @strawberry.field(description="The guide's locations; null with an error if unavailable.")
    async def locations(self, info: Info) -> list[Location] | None:
        records = await resolve.locations_of_guide(info, self.guidebook_id)
        return [Location.from_record(r) for r in records]

    @strawberry.field(description="The guide's sessions, by default in start order.")
    async def sessions(
        self,
        info: Info,
        filter: GuidebookSessionFilter | None = None,
        order_by: list[GuidebookSessionOrder] | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> GuidebookSessionConnection | None:
        return await _session_connection(info, self.guidebook_id, filter, order_by, first, after)


@strawberry.federation.type(
    keys=["guidebookId", "id"],
    description="A schedule track: a colour-coded group of a guide's sessions.",
)
class ScheduleTrack(Node):
    guidebook_id: int = strawberry.field(description=GUIDEBOOK_ID)
    guide_id: int
    name: str | None
    color: str | None = strawberry.field(description="Hex colour such as #000080, or null.")
    import_id: str | None
    created_at: datetime | None

    @classmethod
    def from_record(cls, record: ScheduleTrackRecord) -> Self:
        return copy_record(
            cls,
            record,
            id=encode_id("ScheduleTrack", record.id),
            guidebook_id=record.id,
            guide_id=record.guide,
        )

    @strawberry.field(description="The guide this track belongs to.")
    async def guide(self, info: Info) -> Guide | None:
        return Guide.from_record(await resolve.guide(info, self.guide_id))

    @strawberry.field(description="The track's sessions; null with an error if unavailable.")
    async def sessions(self, info: Info) -> list[GuidebookSession] | None:
        records = await resolve.sessions_of_track(info, self.guide_id, self.guidebook_id)
        return [GuidebookSession.from_record(r) for r in records]


@strawberry.federation.type(
    keys=["guidebookId", "id"],
    description="A place in a guide: a room, the Main Venue or a map pin.",
)
class Location(Node):
    guidebook_id: int = strawberry.field(description=GUIDEBOOK_ID)
    guide_id: int
    name: str | None
    description: str | None
    location_type: int | None = strawberry.field(
        description="1 Main Venue, 2 plain location, 3 Google Maps location."
    )
    latitude: float | None
    longitude: float | None
    address: Address | None
    import_id: str | None
    created_at: datetime | None

    @classmethod
    def from_record(cls, record: LocationRecord) -> Self:
        return copy_record(
            cls,
            record,
            id=encode_id("Location", record.id),
            guidebook_id=record.id,
            guide_id=record.guide,
            address=Address.from_record(record.address),
        )

    @strawberry.field(description="The guide this location belongs to.")
    async def guide(self, info: Info) -> Guide | None:
        return Guide.from_record(await resolve.guide(info, self.guide_id))


@strawberry.federation.type(
    keys=["guidebookId", "id"], description="A session of a Guidebook guide's schedule."
)
class GuidebookSession(Session):
    guidebook_id: int = strawberry.field(description=GUIDEBOOK_ID)
    guide_id: int
    description_html: str | None
    start_time: datetime | None
    end_time: datetime | None = strawberry.field(description="Null for all-day sessions.")
    all_day: bool | None
    allow_rating: bool | None
    add_to_schedule: bool | None
    import_id: str | None
    schedule_track_ids: list[int]
    location_ids: list[int]
    image: str | None = strawberry.field(description="Image URL, null when unset.")
    rank: float | None = strawberry.field(description="Display order.")
    require_login: bool | None
    max_capacity: int | None
    waitlist: bool | None
    registration_start_date: datetime | None
    registration_end_date: datetime | None
    created_at: datetime | None

    @classmethod
    def from_record(cls, record: GuidebookSessionRecord) -> Self:
        return copy_record(
            cls,
            record,
            id=encode_id("GuidebookSession", record.id),
            starts_at=record.start_time,
            ends_at=record.end_time,
            source=SessionSource.GUIDEBOOK,
            guidebook_id=record.id,
            guide_id=record.guide,
            schedule_track_ids=list(record.schedule_tracks),
            location_ids=list(record.locations),
        )

    @strawberry.field(description="The guide this session belongs to.")
    async def guide(self, info: Info) -> Guide | None:
        return Guide.from_record(await resolve.guide(info, self.guide_id))

    @strawberry.field(description="The session's tracks; null with an error if unavailable.")
    async def schedule_tracks(self, info: Info) -> list[ScheduleTrack] | None:
        # Through the guide's track list: one request for every session of the page.
        records = await resolve.schedule_tracks(info, self.guide_id)
        return [
            ScheduleTrack.from_record(r) for r in resolve.pick(records, self.schedule_track_ids)
        ]

    @strawberry.field(description="The session's locations; null with an error if unavailable.")
    async def locations(self, info: Info) -> list[Location] | None:
        records = await resolve.locations_of_guide(info, self.guide_id)
        return [Location.from_record(r) for r in resolve.pick(records, self.location_ids)]


@strawberry.type
class GuideEdge:
    cursor: str
    node: Guide


@strawberry.type(description="A page of guides.")
class GuideConnection:
    edges: list[GuideEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Guidebook's `count` of the whole list.")

    @strawberry.field(description="The guides of this page, without cursors.")
    def nodes(self) -> list[Guide]:
        return [edge.node for edge in self.edges]


@strawberry.type
class GuidebookSessionEdge:
    cursor: str
    node: GuidebookSession


@strawberry.type(description="A page of a guide's sessions.")
class GuidebookSessionConnection:
    edges: list[GuidebookSessionEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Sessions matching the filter in the guide.")

    @strawberry.field(description="The sessions of this page, without cursors.")
    def nodes(self) -> list[GuidebookSession]:
        return [edge.node for edge in self.edges]


NodeT = TypeVar("NodeT")


def _edges(
    page: Page[Any], node: Callable[[Any], NodeT]
) -> tuple[list[tuple[str, NodeT]], PageInfo]:
    edges = [(encode_cursor(page.offset + i), node(r)) for i, r in enumerate(page.records)]
    return edges, page_info(page.offset, len(edges), page.total)


def _window(first: int | None, after: str | None) -> tuple[int, int]:
    return page_window(first, after, default=resolve.DEFAULT_FIRST, maximum=resolve.MAX_FIRST)


async def _session_connection(
    info: Info,
    guide_id: int,
    filter: GuidebookSessionFilter | None,
    order_by: list[GuidebookSessionOrder] | None,
    first: int | None,
    after: str | None,
) -> GuidebookSessionConnection:
    offset, limit = _window(first, after)
    page = await resolve.sessions(
        info, guide_id, to_filter_spec(filter), _ordering(order_by), offset, limit
    )
    edges, position = _edges(page, GuidebookSession.from_record)
    return GuidebookSessionConnection(
        edges=[GuidebookSessionEdge(cursor=c, node=n) for c, n in edges],
        page_info=position,
        total_count=page.total,
    )


@strawberry.type
class GuidebookQuery:
    """Root fields over Guidebook; each is null with a coded error when Guidebook fails."""

    @strawberry.field(description="The guides the API key's account can see.")
    async def guides(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> GuideConnection | None:
        offset, limit = _window(first, after)
        page = await resolve.guides(info, offset, limit)
        edges, position = _edges(page, Guide.from_record)
        return GuideConnection(
            edges=[GuideEdge(cursor=c, node=n) for c, n in edges],
            page_info=position,
            total_count=page.total,
        )

    @strawberry.field(description="One guide by its Guidebook id.")
    async def guide(self, info: Info, id: int) -> Guide | None:
        return Guide.from_record(await resolve.guide(info, id))

    @strawberry.field(description="A guide's schedule tracks.")
    async def schedule_tracks(self, info: Info, guide_id: int) -> list[ScheduleTrack] | None:
        return [ScheduleTrack.from_record(r) for r in await resolve.schedule_tracks(info, guide_id)]

    @strawberry.field(
        description="A guide's sessions, by default in start order (then id). `first` is at "
        f"most {resolve.MAX_FIRST} and defaults to {resolve.DEFAULT_FIRST}."
    )
    async def guidebook_sessions(
        self,
        info: Info,
        guide_id: int,
        filter: GuidebookSessionFilter | None = None,
        order_by: list[GuidebookSessionOrder] | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> GuidebookSessionConnection | None:
        return await _session_connection(info, guide_id, filter, order_by, first, after)

    @strawberry.field(description="One Guidebook session by its Guidebook id.")
    async def guidebook_session(self, info: Info, id: int) -> GuidebookSession | None:
        return GuidebookSession.from_record(await resolve.session(info, id))


async def _guide_node(info: Info, key: str) -> Guide:
    return Guide.from_record(await resolve.guide(info, int_key(key, "Guide")))


async def _session_node(info: Info, key: str) -> GuidebookSession:
    return GuidebookSession.from_record(
        await resolve.session(info, int_key(key, "GuidebookSession"))
    )


async def _track_node(info: Info, key: str) -> ScheduleTrack:
    found = await resolve.loaders(info).schedule_track.load(int_key(key, "ScheduleTrack"))
    if found is None:
        raise NotFound(f"no Guidebook schedule track {key}")
    return ScheduleTrack.from_record(found)


async def _location_node(info: Info, key: str) -> Location:
    found = await resolve.loaders(info).location.load(int_key(key, "Location"))
    if found is None:
        raise NotFound(f"no Guidebook location {key}")
    return Location.from_record(found)


register_node("Guide", ["guidebookId"], _guide_node)
register_node("GuidebookSession", ["guidebookId"], _session_node)
register_node("ScheduleTrack", ["guidebookId"], _track_node)
register_node("Location", ["guidebookId"], _location_node)
