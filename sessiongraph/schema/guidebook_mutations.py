"""Guidebook mutations: inputs, `<Verb><Type>Payload`s with `userErrors`, the Mutation root part."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import strawberry
from strawberry import UNSET

from ..resolvers import guidebook_writes as write
from .context import Info
from .guidebook import Guide, GuidebookSession, ScheduleTrack

__all__ = ["GuidebookMutation", "UserError"]

# GraphQL input names whose upstream name is not their snake_case.
_UPSTREAM_NAMES = {
    "guide_id": "guide",
    "schedule_track_ids": "schedule_tracks",
    "location_ids": "locations",
}
AUTH = " Needs `Authorization: Bearer <token>` (a token whose SHA-256 is in API_TOKEN_HASHES)."
SANITIZED = "True when descriptionHtml lost tags or attributes Guidebook does not allow."
IMPORT_ID = (
    "Your own id for the object. When absent the gateway generates one: it is how a create "
    "whose answer was lost is found again instead of being sent twice."
)
# Every write whose answer can be lost says so the same way.
UNKNOWN_OUTCOME = (
    " When Guidebook's answer is lost and checking cannot settle it, the field is null with an "
    'error whose `extensions.outcome` is "UNKNOWN": the write may or may not have happened, '
    "so look before sending it again."
)
CREATE_OUTCOME = UNKNOWN_OUTCOME + (
    " A create is first looked up by its importId (resent at most once, only when proven "
    "absent); the error's `extensions.importId` is the importId used, also a generated one."
)


def _upstream_values(data: object, *, keep_nulls: bool) -> dict[str, Any]:
    """Given input fields by upstream name. Update inputs keep explicit nulls (they clear)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(data):  # type: ignore[arg-type]
        value = getattr(data, f.name)
        if f.name == "id" or value is UNSET or (value is None and not keep_nulls):
            continue
        values[_UPSTREAM_NAMES.get(f.name, f.name)] = value
    return values


@strawberry.type(description="Why a mutation did not happen, tied to an input field if it can be.")
class UserError:
    field: str | None = strawberry.field(description="The input field, e.g. endTime; null: all.")
    message: str
    code: str = strawberry.field(description="BAD_USER_INPUT or NOT_FOUND.")


def _user_errors(outcome: write.Outcome[Any]) -> list[UserError]:
    return [UserError(field=p.field, message=p.message, code=p.code) for p in outcome.problems]


@strawberry.input
class CreateSessionInput:
    guide_id: int
    name: str
    start_time: datetime
    description_html: str | None = strawberry.field(
        default=None, description="Basic HTML, at most 20,000 characters; sanitized."
    )
    end_time: datetime | None = strawberry.field(
        default=None, description="Leave out for all-day sessions; not before startTime."
    )
    all_day: bool | None = None
    allow_rating: bool | None = None
    add_to_schedule: bool | None = None
    import_id: str | None = strawberry.field(default=None, description=IMPORT_ID)
    schedule_track_ids: list[int] | None = strawberry.field(
        default=None, description="Tracks of the same guide."
    )
    location_ids: list[int] | None = strawberry.field(
        default=None, description="Locations of the same guide."
    )
    rank: float | None = None
    require_login: bool | None = strawberry.field(default=None, description="Needs addToSchedule.")
    max_capacity: int | None = strawberry.field(default=None, description="Needs requireLogin.")
    waitlist: bool | None = strawberry.field(default=None, description="Needs maxCapacity.")
    registration_start_date: datetime | None = strawberry.field(
        default=None, description="Needs requireLogin."
    )
    registration_end_date: datetime | None = strawberry.field(
        default=None, description="Needs requireLogin; not before registrationStartDate."
    )


@strawberry.input(description="Only the fields given are changed; null clears a field.")
class UpdateSessionInput:
    id: int
    name: str | None = UNSET
    description_html: str | None = UNSET
    start_time: datetime | None = UNSET
    end_time: datetime | None = UNSET
    all_day: bool | None = UNSET
    allow_rating: bool | None = UNSET
    add_to_schedule: bool | None = UNSET
    import_id: str | None = UNSET
    schedule_track_ids: list[int] | None = UNSET
    location_ids: list[int] | None = UNSET
    rank: float | None = UNSET
    require_login: bool | None = UNSET
    max_capacity: int | None = UNSET
    waitlist: bool | None = UNSET
    registration_start_date: datetime | None = UNSET
    registration_end_date: datetime | None = UNSET


@strawberry.input
class DeleteSessionInput:
    id: int


@strawberry.input
class CreateScheduleTrackInput:
    guide_id: int
    name: str
    color: str | None = strawberry.field(default=None, description="Hex colour like #000080.")
    import_id: str | None = strawberry.field(default=None, description=IMPORT_ID)


@strawberry.input(description="Only the fields given are changed; null clears a field.")
class UpdateScheduleTrackInput:
    id: int
    name: str | None = UNSET
    color: str | None = UNSET
    import_id: str | None = UNSET


@strawberry.input
class DeleteScheduleTrackInput:
    id: int


@strawberry.input(description="Only the fields given are changed; null clears a field.")
class UpdateGuideInput:
    id: int
    name: str | None = UNSET
    short_name: str | None = UNSET
    description_html: str | None = UNSET
    start_date: datetime | None = UNSET
    end_date: datetime | None = UNSET
    attendees_estimate: int | None = UNSET
    timezone: str | None = strawberry.field(default=UNSET, description="tz name, e.g. UTC.")
    privacy: int | None = strawberry.field(default=UNSET, description="1, 2 or 3.")
    redeem_code: str | None = strawberry.field(
        default=UNSET, description="Passphrase; Guidebook allows one change per hour."
    )


@strawberry.type
class CreateSessionPayload:
    session: GuidebookSession | None
    user_errors: list[UserError]
    sanitized: bool = strawberry.field(description=SANITIZED)


@strawberry.type
class UpdateSessionPayload:
    session: GuidebookSession | None
    user_errors: list[UserError]
    sanitized: bool = strawberry.field(description=SANITIZED)


@strawberry.type
class DeleteSessionPayload:
    deleted_id: int | None
    user_errors: list[UserError]


@strawberry.type
class CreateScheduleTrackPayload:
    schedule_track: ScheduleTrack | None
    user_errors: list[UserError]


@strawberry.type
class UpdateScheduleTrackPayload:
    schedule_track: ScheduleTrack | None
    user_errors: list[UserError]


@strawberry.type
class DeleteScheduleTrackPayload:
    deleted_id: int | None
    user_errors: list[UserError]


@strawberry.type
class UpdateGuidePayload:
    guide: Guide | None
    user_errors: list[UserError]
    sanitized: bool = strawberry.field(description=SANITIZED)


def _session(outcome: write.Outcome[Any]) -> GuidebookSession | None:
    return GuidebookSession.from_record(outcome.record) if outcome.record is not None else None


def _track(outcome: write.Outcome[Any]) -> ScheduleTrack | None:
    return ScheduleTrack.from_record(outcome.record) if outcome.record is not None else None


@strawberry.type
class GuidebookMutation:
    """Guidebook create / update / delete. Nothing is sent upstream unless the input passes."""

    @strawberry.mutation(description="Create a Guidebook session." + CREATE_OUTCOME + AUTH)
    async def create_session(
        self, info: Info, input: CreateSessionInput
    ) -> CreateSessionPayload | None:
        outcome = await write.create_session(info, _upstream_values(input, keep_nulls=False))
        return CreateSessionPayload(
            session=_session(outcome),
            user_errors=_user_errors(outcome),
            sanitized=outcome.sanitized,
        )

    @strawberry.mutation(
        description="Change the given fields of a session (PATCH)." + UNKNOWN_OUTCOME + AUTH
    )
    async def update_session(
        self, info: Info, input: UpdateSessionInput
    ) -> UpdateSessionPayload | None:
        changes = _upstream_values(input, keep_nulls=True)
        outcome = await write.update_session(info, input.id, changes)
        return UpdateSessionPayload(
            session=_session(outcome),
            user_errors=_user_errors(outcome),
            sanitized=outcome.sanitized,
        )

    @strawberry.mutation(description="Delete a session." + UNKNOWN_OUTCOME + AUTH)
    async def delete_session(
        self, info: Info, input: DeleteSessionInput
    ) -> DeleteSessionPayload | None:
        outcome = await write.delete_session(info, input.id)
        return DeleteSessionPayload(
            deleted_id=outcome.deleted_id, user_errors=_user_errors(outcome)
        )

    @strawberry.mutation(description="Create a schedule track." + CREATE_OUTCOME + AUTH)
    async def create_schedule_track(
        self, info: Info, input: CreateScheduleTrackInput
    ) -> CreateScheduleTrackPayload | None:
        outcome = await write.create_schedule_track(info, _upstream_values(input, keep_nulls=False))
        return CreateScheduleTrackPayload(
            schedule_track=_track(outcome), user_errors=_user_errors(outcome)
        )

    @strawberry.mutation(
        description="Change the given fields of a schedule track." + UNKNOWN_OUTCOME + AUTH
    )
    async def update_schedule_track(
        self, info: Info, input: UpdateScheduleTrackInput
    ) -> UpdateScheduleTrackPayload | None:
        changes = _upstream_values(input, keep_nulls=True)
        outcome = await write.update_schedule_track(info, input.id, changes)
        return UpdateScheduleTrackPayload(
            schedule_track=_track(outcome), user_errors=_user_errors(outcome)
        )

    @strawberry.mutation(
        description="Delete a schedule track (it leaves its sessions)." + UNKNOWN_OUTCOME + AUTH
    )
    async def delete_schedule_track(
        self, info: Info, input: DeleteScheduleTrackInput
    ) -> DeleteScheduleTrackPayload | None:
        outcome = await write.delete_schedule_track(info, input.id)
        return DeleteScheduleTrackPayload(
            deleted_id=outcome.deleted_id, user_errors=_user_errors(outcome)
        )

    @strawberry.mutation(
        description="Change the given fields of a guide (guides cannot be created or deleted "
        "through the Open API)." + UNKNOWN_OUTCOME + AUTH
    )
    async def update_guide(self, info: Info, input: UpdateGuideInput) -> UpdateGuidePayload | None:
        changes = _upstream_values(input, keep_nulls=True)
        outcome = await write.update_guide(info, input.id, changes)
        guide = Guide.from_record(outcome.record) if outcome.record is not None else None
        return UpdateGuidePayload(
            guide=guide, user_errors=_user_errors(outcome), sanitized=outcome.sanitized
        )
