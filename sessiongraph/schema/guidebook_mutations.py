"""Guidebook mutations: inputs, `<Verb><Type>Payload`s with `userErrors`, the Mutation root part."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar, Self, TypeVar

import strawberry
from strawberry import UNSET
from strawberry.file_uploads import Upload

from ..errors import BadUserInput
from ..resolvers import guidebook_writes as write
from .context import Info
from .guidebook import Guide, GuidebookSession, Location, ScheduleTrack
from .ids import encode_id, input_key

__all__ = ["GuidebookMutation", "UserError"]

# GraphQL input names whose upstream name is not their snake_case.
_UPSTREAM_NAMES = {
    "guide_id": "guide",
    "schedule_track_ids": "schedule_tracks",
    "location_ids": "locations",
}
AUTH = (
    " Needs `Authorization: Bearer <token>` (a token whose SHA-256 is in API_TOKEN_HASHES), "
    "or your own Guidebook key in `X-Guidebook-Api-Key`: then Guidebook decides what it may do."
)
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


# Input fields that reference objects: the type whose global ID (or integer) they take.
_REFERENCES = {
    "guide_id": "Guide",
    "schedule_track_ids": "ScheduleTrack",
    "location_ids": "Location",
}
ID_DESCRIPTION = "The Guidebook integer or the object's global `id`."
# Input fields that are not upstream fields: the object's id, and the image (sent apart).
_NOT_SENT = frozenset({"id", "image", "remove_image"})
IMAGE = (
    "A PNG or JPEG (checked by its content) of at most MAX_UPLOAD_BYTES, sent as a GraphQL "
    "multipart request; Guidebook's ideal session image is 640x240. It is uploaded after the "
    "session's other fields: if that fails, the session is kept and a userError on `image` "
    "says so (nothing is resent)."
)


class _BadIds(Exception):
    def __init__(self, problems: list[write.Problem]) -> None:
        self.problems = problems


def _upstream_values(data: object, *, keep_nulls: bool) -> dict[str, Any]:
    """Given input fields by upstream name, references as Guidebook integers. Update inputs
    keep explicit nulls (they clear). Raises _BadIds for ids that name nothing of theirs."""
    values: dict[str, Any] = {}
    problems: list[write.Problem] = []
    for f in dataclasses.fields(data):  # type: ignore[arg-type]
        value = getattr(data, f.name)
        if f.name in _NOT_SENT or value is UNSET or (value is None and not keep_nulls):
            continue
        if dataclasses.is_dataclass(value):
            # A nested input (an address): its given fields, as the upstream's JSON object.
            value = {k: v for k, v in vars(value).items() if v is not UNSET and v is not None}
        if f.name in _REFERENCES and value is not None:
            try:
                value = _keys(value, _REFERENCES[f.name])
            except BadUserInput as exc:
                problems.append(write.Problem(write.input_name(f.name), exc.message))
                continue
        values[_UPSTREAM_NAMES.get(f.name, f.name)] = value
    if problems:
        raise _BadIds(problems)
    return values


def _keys(value: Any, type_name: str) -> Any:
    if isinstance(value, list):
        return [input_key(str(item), type_name) for item in value]
    return input_key(str(value), type_name)


def _own_key(value: strawberry.ID, type_name: str) -> int:
    """The input's `id` as a Guidebook integer."""
    try:
        return input_key(str(value), type_name)
    except BadUserInput as exc:
        raise _BadIds([write.Problem("id", exc.message)]) from None


@strawberry.type(description="Why a mutation did not happen, tied to an input field if it can be.")
class UserError:
    field: str | None = strawberry.field(description="The input field, e.g. endTime; null: all.")
    message: str
    code: str = strawberry.field(
        description="BAD_USER_INPUT or NOT_FOUND; RATE_LIMITED for a limit that refused the "
        "write; for an upstream failure of one item of a bulk create or of an image upload, "
        "the error code (e.g. UPSTREAM_UNAVAILABLE)."
    )


@strawberry.input
class CreateSessionInput:
    guide_id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)
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
    schedule_track_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Tracks of the same guide (integers or global ids)."
    )
    location_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Locations of the same guide (integers or global ids)."
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
    image: Upload | None = strawberry.field(default=None, description=IMAGE)


@strawberry.input(description="Only the fields given are changed; null clears a field.")
class UpdateSessionInput:
    id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)
    name: str | None = UNSET
    description_html: str | None = UNSET
    start_time: datetime | None = UNSET
    end_time: datetime | None = UNSET
    all_day: bool | None = UNSET
    allow_rating: bool | None = UNSET
    add_to_schedule: bool | None = UNSET
    import_id: str | None = UNSET
    schedule_track_ids: list[strawberry.ID] | None = UNSET
    location_ids: list[strawberry.ID] | None = UNSET
    rank: float | None = UNSET
    require_login: bool | None = UNSET
    max_capacity: int | None = UNSET
    waitlist: bool | None = UNSET
    registration_start_date: datetime | None = UNSET
    registration_end_date: datetime | None = UNSET
    image: Upload | None = strawberry.field(default=UNSET, description=IMAGE)
    remove_image: bool | None = strawberry.field(
        default=UNSET, description="True removes the session's image."
    )


@strawberry.input
class DeleteSessionInput:
    id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)


@strawberry.input
class CreateScheduleTrackInput:
    guide_id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)
    name: str
    color: str | None = strawberry.field(default=None, description="Hex colour like #000080.")
    import_id: str | None = strawberry.field(default=None, description=IMPORT_ID)


@strawberry.input(description="Only the fields given are changed; null clears a field.")
class UpdateScheduleTrackInput:
    id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)
    name: str | None = UNSET
    color: str | None = UNSET
    import_id: str | None = UNSET


@strawberry.input
class DeleteScheduleTrackInput:
    id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)


@strawberry.input(description="Only the fields given are changed; null clears a field.")
class UpdateGuideInput:
    id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)
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


@strawberry.input(description="A postal address; the Main Venue is geocoded from it.")
class AddressInput:
    address: str | None = None
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zipcode: str | None = None
    country: str | None = None


LOCATION_TYPE = "1 Main Venue (one per guide), 2 plain location, 3 Google Maps location."
COORDINATE = "Degrees; required for a Google Maps location (locationType 3)."


@strawberry.input
class CreateLocationInput:
    guide_id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)
    name: str
    location_type: int = strawberry.field(description=LOCATION_TYPE)
    latitude: float | None = strawberry.field(default=None, description=COORDINATE)
    longitude: float | None = strawberry.field(default=None, description=COORDINATE)
    address: AddressInput | None = None
    import_id: str | None = strawberry.field(default=None, description=IMPORT_ID)


@strawberry.input(description="Only the fields given are changed; null clears a field.")
class UpdateLocationInput:
    id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)
    name: str | None = UNSET
    location_type: int | None = strawberry.field(default=UNSET, description=LOCATION_TYPE)
    latitude: float | None = strawberry.field(default=UNSET, description=COORDINATE)
    longitude: float | None = strawberry.field(default=UNSET, description=COORDINATE)
    address: AddressInput | None = UNSET
    import_id: str | None = UNSET


@strawberry.input
class DeleteLocationInput:
    id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)


@strawberry.input
class PublishGuideInput:
    guide_id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)


@strawberry.input
class CreateSessionsInput:
    sessions: list[CreateSessionInput] = strawberry.field(
        description=f"At most {write.MAX_BULK_SESSIONS} sessions, created "
        f"{write.BULK_CONCURRENCY} at a time."
    )


class _Payload:
    """Every payload is filled the same way from its write's outcome (also one refused before
    sending): the changed object, `userErrors`, `sanitized` or the deleted ids if it has them."""

    # The type of the object the payload carries, or of the one it deleted.
    node: ClassVar[Any]

    @classmethod
    def of(cls, outcome: write.Outcome[Any]) -> Self:
        values: dict[str, Any] = {"user_errors": _refused(outcome.problems)}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name == "sanitized":
                values[f.name] = outcome.sanitized
            elif f.name == "deleted_id":
                values[f.name] = outcome.deleted_id
            elif f.name == "retry_after":
                values[f.name] = outcome.retry_after
            elif f.name == "deleted_node_id":
                deleted = outcome.deleted_id
                values[f.name] = None if deleted is None else encode_id(cls.node.__name__, deleted)
            elif f.name != "user_errors":
                record = outcome.record
                values[f.name] = None if record is None else cls.node.from_record(record)
        return cls(**values)


@strawberry.type
class CreateSessionPayload(_Payload):
    node = GuidebookSession
    session: GuidebookSession | None
    user_errors: list[UserError]
    sanitized: bool = strawberry.field(description=SANITIZED)


@strawberry.type
class UpdateSessionPayload(_Payload):
    node = GuidebookSession
    session: GuidebookSession | None
    user_errors: list[UserError]
    sanitized: bool = strawberry.field(description=SANITIZED)


DELETED_ID = "The Guidebook id of the deleted object."
DELETED_NODE_ID = "Its global ID, for evicting it from a client cache."


@strawberry.type
class DeleteSessionPayload(_Payload):
    node = GuidebookSession
    deleted_id: int | None = strawberry.field(description=DELETED_ID)
    deleted_node_id: strawberry.ID | None = strawberry.field(description=DELETED_NODE_ID)
    user_errors: list[UserError]


@strawberry.type
class CreateScheduleTrackPayload(_Payload):
    node = ScheduleTrack
    schedule_track: ScheduleTrack | None
    user_errors: list[UserError]


@strawberry.type
class UpdateScheduleTrackPayload(_Payload):
    node = ScheduleTrack
    schedule_track: ScheduleTrack | None
    user_errors: list[UserError]


@strawberry.type
class DeleteScheduleTrackPayload(_Payload):
    node = ScheduleTrack
    deleted_id: int | None = strawberry.field(description=DELETED_ID)
    deleted_node_id: strawberry.ID | None = strawberry.field(description=DELETED_NODE_ID)
    user_errors: list[UserError]


@strawberry.type
class UpdateGuidePayload(_Payload):
    node = Guide
    guide: Guide | None
    user_errors: list[UserError]
    sanitized: bool = strawberry.field(description=SANITIZED)


@strawberry.type
class CreateLocationPayload(_Payload):
    node = Location
    location: Location | None
    user_errors: list[UserError]


@strawberry.type
class UpdateLocationPayload(_Payload):
    node = Location
    location: Location | None
    user_errors: list[UserError]


@strawberry.type
class DeleteLocationPayload(_Payload):
    node = Location
    deleted_id: int | None = strawberry.field(description=DELETED_ID)
    deleted_node_id: strawberry.ID | None = strawberry.field(description=DELETED_NODE_ID)
    user_errors: list[UserError]


@strawberry.type
class PublishGuidePayload(_Payload):
    node = Guide
    guide: Guide | None = strawberry.field(description="The guide, when publishing was queued.")
    retry_after: float | None = strawberry.field(
        description="Seconds to wait before publishing again, when the limit refused it."
    )
    user_errors: list[UserError]


@strawberry.type
class CreateSessionsPayload:
    results: list[CreateSessionPayload] = strawberry.field(
        description="One result per input session, in the order given."
    )


def _refused(problems: list[write.Problem]) -> list[UserError]:
    return [UserError(field=p.field, message=p.message, code=p.code) for p in problems]


P = TypeVar("P", bound=_Payload)
InputT = TypeVar("InputT")


async def _mutate(
    info: Info, payload: type[P], write_: Callable[[], Awaitable[write.Outcome[Any]]]
) -> P:
    """Authorize, then run the write; ids that name nothing of the caller's become userErrors
    before anything is sent."""
    write.authorize(info)
    try:
        outcome = await write_()
    except _BadIds as bad:
        outcome = write.Outcome(problems=bad.problems)
    return payload.of(outcome)


def _mutation(
    input_type: type[InputT],
    payload: type[P],
    send: Callable[[Info, InputT], Awaitable[write.Outcome[Any]]],
    description: str,
) -> Any:
    """One mutation field `(input: input_type): payload`: `send` turns the input into its
    write; authorization and the ids that name nothing of the caller's are `_mutate`'s."""

    async def resolve(info: Info, input: InputT) -> P | None:
        return await _mutate(info, payload, lambda: send(info, input))

    resolve.__annotations__ = {"info": Info, "input": input_type, "return": payload | None}
    return strawberry.mutation(resolver=resolve, description=description)


@strawberry.type
class GuidebookMutation:
    """Guidebook create / update / delete. Nothing is sent upstream unless the input passes."""

    create_session = _mutation(
        CreateSessionInput,
        CreateSessionPayload,
        lambda info, input: write.create_session(
            info, _upstream_values(input, keep_nulls=False), _image(input.image)
        ),
        "Create a Guidebook session." + CREATE_OUTCOME + AUTH,
    )
    update_session = _mutation(
        UpdateSessionInput,
        UpdateSessionPayload,
        lambda info, input: write.update_session(
            info,
            _own_key(input.id, "GuidebookSession"),
            _upstream_values(input, keep_nulls=True),
            _image(input.image),
            remove_image=input.remove_image is True,
        ),
        "Change the given fields of a session (PATCH)." + UNKNOWN_OUTCOME + AUTH,
    )
    delete_session = _mutation(
        DeleteSessionInput,
        DeleteSessionPayload,
        lambda info, input: write.delete_session(info, _own_key(input.id, "GuidebookSession")),
        "Delete a session." + UNKNOWN_OUTCOME + AUTH,
    )
    create_schedule_track = _mutation(
        CreateScheduleTrackInput,
        CreateScheduleTrackPayload,
        lambda info, input: write.create_schedule_track(
            info, _upstream_values(input, keep_nulls=False)
        ),
        "Create a schedule track." + CREATE_OUTCOME + AUTH,
    )
    update_schedule_track = _mutation(
        UpdateScheduleTrackInput,
        UpdateScheduleTrackPayload,
        lambda info, input: write.update_schedule_track(
            info, _own_key(input.id, "ScheduleTrack"), _upstream_values(input, keep_nulls=True)
        ),
        "Change the given fields of a schedule track." + UNKNOWN_OUTCOME + AUTH,
    )
    delete_schedule_track = _mutation(
        DeleteScheduleTrackInput,
        DeleteScheduleTrackPayload,
        lambda info, input: write.delete_schedule_track(info, _own_key(input.id, "ScheduleTrack")),
        "Delete a schedule track (it leaves its sessions)." + UNKNOWN_OUTCOME + AUTH,
    )
    update_guide = _mutation(
        UpdateGuideInput,
        UpdateGuidePayload,
        lambda info, input: write.update_guide(
            info, _own_key(input.id, "Guide"), _upstream_values(input, keep_nulls=True)
        ),
        "Change the given fields of a guide (guides cannot be created or deleted through the "
        "Open API)." + UNKNOWN_OUTCOME + AUTH,
    )
    create_location = _mutation(
        CreateLocationInput,
        CreateLocationPayload,
        lambda info, input: write.create_location(info, _upstream_values(input, keep_nulls=False)),
        "Create a location." + CREATE_OUTCOME + AUTH,
    )
    update_location = _mutation(
        UpdateLocationInput,
        UpdateLocationPayload,
        lambda info, input: write.update_location(
            info, _own_key(input.id, "Location"), _upstream_values(input, keep_nulls=True)
        ),
        "Change the given fields of a location." + UNKNOWN_OUTCOME + AUTH,
    )
    delete_location = _mutation(
        DeleteLocationInput,
        DeleteLocationPayload,
        lambda info, input: write.delete_location(info, _own_key(input.id, "Location")),
        "Delete a location (its sessions lose it)." + UNKNOWN_OUTCOME + AUTH,
    )
    publish_guide = _mutation(
        PublishGuideInput,
        PublishGuidePayload,
        lambda info, input: write.publish_guide(info, _own_key(input.guide_id, "Guide")),
        "Publish a guide's changes to its app (Guidebook queues it). Guidebook allows "
        f"{write.PUBLISHES_PER_MINUTE} a minute per guide: a third is refused here with a "
        "RATE_LIMITED userError and `retryAfter`." + UNKNOWN_OUTCOME + AUTH,
    )

    @strawberry.mutation(
        description="Create many sessions (a schedule import): one result per input, in "
        "order; some may fail while the others are created. Each session is idempotent by "
        "its importId (one is derived from the session and its place when absent), so "
        "sending the same call again creates nothing twice." + AUTH
    )
    async def create_sessions(
        self, info: Info, input: CreateSessionsInput
    ) -> CreateSessionsPayload | None:
        write.authorize(info)
        if len(input.sessions) > write.MAX_BULK_SESSIONS:
            raise BadUserInput(
                f"createSessions takes at most {write.MAX_BULK_SESSIONS} sessions a call; "
                f"split the {len(input.sessions)} given",
                field="sessions",
            )
        items: list[dict[str, Any] | list[write.Problem]] = []
        for session in input.sessions:
            if session.image is not None:
                items.append([write.Problem("image", "createSessions takes no images")])
                continue
            try:
                items.append(_upstream_values(session, keep_nulls=False))
            except _BadIds as bad:
                items.append(bad.problems)
        outcomes = await write.create_sessions(info, items)
        return CreateSessionsPayload(results=[CreateSessionPayload.of(o) for o in outcomes])


def _image(upload: Any) -> write.Image | None:
    """An uploaded file (a Starlette UploadFile) as the write takes it."""
    if upload is None or upload is UNSET:
        return None
    return write.Image(file=upload.file, size=getattr(upload, "size", None))
