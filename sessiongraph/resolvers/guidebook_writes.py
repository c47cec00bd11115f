"""Guidebook mutations: the gateway credential, validation before sending, userErrors.

Inputs arrive as dicts keyed by upstream field names; only given fields are present (PATCH).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import re
import time
import zoneinfo
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Generic, TypeVar

from ..auth import check_bearer
from ..errors import NotFound, SessionGraphError, UpstreamError, UpstreamRateLimited
from ..providers._http import FilePart
from ..providers.guidebook import (
    FieldError,
    GuidebookInvalid,
    GuidebookSessionRecord,
    GuideRecord,
    LocationRecord,
    ScheduleTrackRecord,
    format_timestamp,
    new_import_id,
)
from ..sanitize import sanitize_description
from ..schema.context import Info
from . import guidebook as read

__all__ = [
    "Outcome",
    "Problem",
    "authorize",
    "create_schedule_track",
    "create_session",
    "delete_schedule_track",
    "delete_session",
    "update_guide",
    "update_schedule_track",
    "update_session",
]

DESCRIPTION_LIMIT = 20_000  # reference: Session description_html
_HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
# Upstream names whose GraphQL input name is not just their camelCase.
_INPUT_NAMES = {
    "guide": "guideId",
    "schedule_tracks": "scheduleTrackIds",
    "locations": "locationIds",
}
_TIMESTAMPS = frozenset(
    {
        "start_time",
        "end_time",
        "registration_start_date",
        "registration_end_date",
        "start_date",
        "end_date",
    }
)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Problem:
    """One userError: `field` is the GraphQL input field, or None for the input as a whole."""

    field: str | None
    message: str
    code: str = "BAD_USER_INPUT"


@dataclass
class Outcome(Generic[T]):
    record: T | None = None
    problems: list[Problem] = field(default_factory=list)
    sanitized: bool = False
    deleted_id: int | None = None
    # Seconds until the write may be tried again, when a rate limit refused it.
    retry_after: float | None = None


@dataclass(frozen=True)
class Image:
    """An uploaded file for a session's `image`: what the client sent, not yet checked."""

    file: BinaryIO
    size: int | None


def input_name(upstream: str | None) -> str | None:
    if upstream is None:
        return None
    head = upstream.split(".", 1)[0]
    if head in _INPUT_NAMES:
        return _INPUT_NAMES[head]
    first, *rest = head.split("_")
    return first + "".join(part.title() for part in rest)


def authorize(info: Info) -> None:
    """Mutations need the gateway credential before anything else happens, unless the caller
    writes with its own Guidebook key: then Guidebook itself decides what that key may do."""
    if info.context.providers.guidebook_caller:
        return
    request = info.context.request
    header = request.headers.get("authorization") if request is not None else None
    check_bearer(header, info.context.settings.api_token_hashes)


# --- sessions ------------------------------------------------------------------------------


async def create_session(
    info: Info, values: dict[str, Any], image: Image | None = None, *, reuse: bool | None = None
) -> Outcome[GuidebookSessionRecord]:
    """`reuse`: whether a session already holding the importId is the answer (default: when
    the client chose the importId); the image is uploaded once the session exists."""
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[GuidebookSessionRecord] = Outcome()
    chosen = _ensure_import_id(values)
    outcome.sanitized = _sanitize(values, span_style=provider.version == "v1.1")
    outcome.problems = _session_rules(values, values)
    part = _checked_image(info, image, outcome.problems)
    outcome.problems += await _guide_references(info, values["guide"], values)
    if outcome.problems:
        return outcome
    reuse_existing = chosen if reuse is None else reuse
    try:
        await _send(
            outcome, lambda: provider.create_session(_wire(values), reuse_existing=reuse_existing)
        )
        if part is not None and outcome.record is not None:
            await _upload(info, outcome, outcome.record.id, part, "created")
    finally:
        _told(info, values["guide"], outcome.record.id if outcome.record else None)
    return outcome


async def update_session(
    info: Info,
    session_id: int,
    changes: dict[str, Any],
    image: Image | None = None,
    remove_image: bool = False,
) -> Outcome[GuidebookSessionRecord]:
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[GuidebookSessionRecord] = Outcome()
    current = await _existing(outcome, read.loaders(info).session.load, session_id, "id", "session")
    if current is None:
        return outcome
    outcome.sanitized = _sanitize(changes, span_style=provider.version == "v1.1")
    merged = {**_fields_of(current), **changes}
    outcome.problems = _session_rules(merged, changes)
    part = _checked_image(info, image, outcome.problems)
    if part is not None and remove_image:
        outcome.problems.append(Problem("removeImage", "give either image or removeImage"))
    outcome.problems += await _guide_references(info, current.guide, changes, check_guide=False)
    if outcome.problems:
        return outcome
    wire = _wire(changes)
    if remove_image:
        wire["image"] = None
    try:
        if wire or part is None:
            await _send(outcome, lambda: provider.update_session(session_id, wire))
        else:
            outcome.record = current
        if part is not None and outcome.record is not None:
            await _upload(info, outcome, session_id, part, "updated")
    finally:
        _told(info, current.guide, session_id)
    return outcome


def _told(info: Info, guide_id: int | None, session_id: int | None) -> None:
    """Subscribers to the guide's changes look again (also after a write whose outcome is
    unknown: they see whatever landed)."""
    live = info.context.live
    if live is not None:
        live.guidebook.told(guide_id, session_id)


# What an image's first bytes are for each format Guidebook takes (reference: PNG and JPEG).
_IMAGE_FORMATS = (
    (b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (b"\xff\xd8\xff", "jpg", "image/jpeg"),
)


def _checked_image(info: Info, image: Image | None, problems: list[Problem]) -> FilePart | None:
    """The upload as a part to send, if it is a PNG or JPEG (by content, whatever its name
    or declared type says) within MAX_UPLOAD_BYTES; else a problem, and nothing is sent."""
    if image is None:
        return None
    limit = info.context.settings.max_upload_bytes
    size = image.size
    if size is None:
        size = image.file.seek(0, 2)
    if size > limit:
        problems.append(Problem("image", f"is {size} bytes; the most is {limit}"))
        return None
    image.file.seek(0)
    head = image.file.read(16)
    image.file.seek(0)
    for magic, suffix, media_type in _IMAGE_FORMATS:
        if head.startswith(magic):
            return FilePart("image", image.file, f"image.{suffix}", media_type)
    problems.append(Problem("image", "must be a PNG or JPEG image (checked by its content)"))
    return None


async def _upload(
    info: Info, outcome: Outcome[GuidebookSessionRecord], session_id: int, part: FilePart, done: str
) -> None:
    """The image after the session's fields: a failed upload leaves the session as it is
    (reported, never resent blindly: the upload may have landed)."""
    try:
        outcome.record = await read.provider(info).set_session_image(session_id, part)
    except GuidebookInvalid as exc:
        outcome.problems = [
            Problem("image", f"the session was {done}, its image refused: {e.message}")
            for e in exc.errors
        ]
    except SessionGraphError as exc:
        outcome.problems = [
            Problem(
                "image", f"the session was {done}, its image not uploaded: {exc.message}", exc.code
            )
        ]


async def delete_session(info: Info, session_id: int) -> Outcome[None]:
    authorize(info)
    provider = read.provider(info)
    try:
        return await _delete(session_id, lambda: provider.delete_session(session_id))
    finally:
        _told(info, None, session_id)


def _session_rules(merged: Mapping[str, Any], given: Mapping[str, Any]) -> list[Problem]:
    """The reference's rules, checked where this input touches them (`merged` is the result)."""
    problems = _required(given, ("name", "start_time"))
    description = given.get("description_html")
    if isinstance(description, str) and len(description) > DESCRIPTION_LIMIT:
        problems.append(
            Problem("descriptionHtml", f"must be at most {DESCRIPTION_LIMIT} characters")
        )
    problems += _ordered(merged, given, "start_time", "end_time")
    problems += _ordered(merged, given, "registration_start_date", "registration_end_date")
    rank = given.get("rank")
    if isinstance(rank, float) and not math.isfinite(rank):
        problems.append(Problem("rank", "must be a finite number"))
    capacity = given.get("max_capacity")
    if isinstance(capacity, int) and capacity < 0:
        problems.append(Problem("maxCapacity", "must not be negative"))
    # Each option needs another (reference: Sessions); Guidebook defaults add_to_schedule on.
    requires = (
        ("require_login", bool(merged.get("require_login")), "add_to_schedule"),
        ("max_capacity", merged.get("max_capacity") is not None, "require_login"),
        ("waitlist", bool(merged.get("waitlist")), "max_capacity"),
        (
            "registration_start_date",
            merged.get("registration_start_date") is not None,
            "require_login",
        ),
        ("registration_end_date", merged.get("registration_end_date") is not None, "require_login"),
    )
    for name, used, needed in requires:
        value = merged.get(needed)
        if needed == "add_to_schedule" and value is None:
            value = True
        if used and (name in given or needed in given) and (value is None or value is False):
            problems.append(
                Problem(input_name(name), f"needs {input_name(needed)} to be set (and true)")
            )
    return problems


async def _guide_references(
    info: Info, guide_id: int, values: Mapping[str, Any], *, check_guide: bool = True
) -> list[Problem]:
    """The guide exists, and the given tracks and locations are that guide's."""
    loaders = read.loaders(info)
    if check_guide and await loaders.guide.load(guide_id) is None:
        return [_missing("guideId", f"no Guidebook guide {guide_id}")]
    problems: list[Problem] = []
    lists: tuple[tuple[str, Callable[[int], Awaitable[list[Any]]], str], ...] = (
        ("schedule_tracks", loaders.tracks_of_guide.load, "schedule track"),
        ("locations", loaders.locations_of_guide.load, "location"),
    )
    for name, load, what in lists:
        wanted = values.get(name) or []
        if not wanted:
            continue
        known = {record.id for record in await load(guide_id)}
        unknown = [key for key in wanted if key not in known]
        if unknown:
            listed = ", ".join(map(str, unknown))
            problems.append(_missing(input_name(name), f"no {what} {listed} in guide {guide_id}"))
    return problems


# --- schedule tracks -----------------------------------------------------------------------


async def create_schedule_track(info: Info, values: dict[str, Any]) -> Outcome[ScheduleTrackRecord]:
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[ScheduleTrackRecord] = Outcome()
    chosen = _ensure_import_id(values)
    outcome.problems = _track_rules(values)
    if not outcome.problems:
        await _existing(outcome, read.loaders(info).guide.load, values["guide"], "guideId", "guide")
    if not outcome.problems:
        await _send(outcome, lambda: provider.create_schedule_track(values, reuse_existing=chosen))
    return outcome


async def update_schedule_track(
    info: Info, track_id: int, changes: dict[str, Any]
) -> Outcome[ScheduleTrackRecord]:
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[ScheduleTrackRecord] = Outcome()
    outcome.problems = _track_rules(changes)
    if not outcome.problems:
        await _send(outcome, lambda: provider.update_schedule_track(track_id, changes))
    return outcome


async def delete_schedule_track(info: Info, track_id: int) -> Outcome[None]:
    authorize(info)
    provider = read.provider(info)
    return await _delete(track_id, lambda: provider.delete_schedule_track(track_id))


def _track_rules(values: Mapping[str, Any]) -> list[Problem]:
    problems = _required(values, ("name",))
    color = values.get("color")
    if color is not None and not _HEX_COLOUR.fullmatch(color):
        problems.append(Problem("color", "must be a hex colour such as #000080"))
    return problems


# --- locations -----------------------------------------------------------------------------

MAIN_VENUE, GOOGLE_MAPS = 1, 3


async def create_location(info: Info, values: dict[str, Any]) -> Outcome[LocationRecord]:
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[LocationRecord] = Outcome()
    chosen = _ensure_import_id(values)
    if (
        await _existing(outcome, read.loaders(info).guide.load, values["guide"], "guideId", "guide")
        is None
    ):
        return outcome
    outcome.problems = await _location_rules(info, values, values, None)
    if not outcome.problems:
        await _send(outcome, lambda: provider.create_location(values, reuse_existing=chosen))
    return outcome


async def update_location(
    info: Info, location_id: int, changes: dict[str, Any]
) -> Outcome[LocationRecord]:
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[LocationRecord] = Outcome()
    current = await _existing(
        outcome, read.loaders(info).location.load, location_id, "id", "location"
    )
    if current is None:
        return outcome
    merged = {**_fields_of(current), **changes}
    outcome.problems = await _location_rules(info, merged, changes, current)
    if not outcome.problems:
        await _send(outcome, lambda: provider.update_location(location_id, changes))
    return outcome


async def delete_location(info: Info, location_id: int) -> Outcome[None]:
    authorize(info)
    provider = read.provider(info)
    return await _delete(location_id, lambda: provider.delete_location(location_id))


async def _location_rules(
    info: Info, merged: Mapping[str, Any], given: Mapping[str, Any], current: LocationRecord | None
) -> list[Problem]:
    """Guidebook's rules (reference, Locations): a type of 1, 2 or 3; latitude and longitude
    for a Google Maps location; one Main Venue per guide."""
    problems = _required(given, ("name",))
    kind = merged.get("location_type")
    if kind not in (1, 2, 3):
        problems.append(
            Problem("locationType", "must be 1 (Main Venue), 2 (plain) or 3 (Google Maps)")
        )
    for name, bound in (("latitude", 90), ("longitude", 180)):
        value = merged.get(name)
        if value is None and kind == GOOGLE_MAPS:
            problems.append(Problem(name, "is required for a Google Maps location (type 3)"))
        elif value is not None and not (math.isfinite(value) and -bound <= value <= bound):
            problems.append(Problem(name, f"must be between -{bound} and {bound}"))
    if kind == MAIN_VENUE and (current is None or current.location_type != MAIN_VENUE):
        guide = merged["guide"]
        others = await read.loaders(info).locations_of_guide.load(guide)
        venue = next((o for o in others if o.location_type == MAIN_VENUE), None)
        if venue is not None:
            problems.append(
                Problem(
                    "locationType",
                    f"guide {guide} already has a Main Venue (location {venue.id}); "
                    "a guide has one",
                )
            )
    return problems


# --- guides --------------------------------------------------------------------------------


async def update_guide(info: Info, guide_id: int, changes: dict[str, Any]) -> Outcome[GuideRecord]:
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[GuideRecord] = Outcome()
    current = await _existing(outcome, read.loaders(info).guide.load, guide_id, "id", "guide")
    if current is None:
        return outcome
    outcome.sanitized = _sanitize(changes, span_style=provider.version == "v1.1")
    merged = {**_fields_of(current), **changes}
    problems = _required(changes, ("name", "short_name"))
    problems += _ordered(merged, changes, "start_date", "end_date")
    estimate = changes.get("attendees_estimate")
    if isinstance(estimate, int) and estimate < 0:
        problems.append(Problem("attendeesEstimate", "must not be negative"))
    timezone = changes.get("timezone")
    if "timezone" in changes and timezone not in _timezones():
        problems.append(Problem("timezone", "must be a tz database name such as US/Pacific"))
    if "privacy" in changes and changes["privacy"] not in (1, 2, 3):
        problems.append(Problem("privacy", "must be 1 public, 2 passphrase or 3 invite-only"))
    outcome.problems = problems
    if not problems:
        await _send(outcome, lambda: provider.update_guide(guide_id, _wire(changes)))
    return outcome


# Guidebook allows two publishes of a guide a minute (reference, Rate limits).
PUBLISHES_PER_MINUTE = 2
_published: dict[int, deque[float]] = defaultdict(deque)


async def publish_guide(info: Info, guide_id: int) -> Outcome[GuideRecord]:
    """`POST /guides/{id}/publish/`, refused here (with when to retry) rather than spending a
    request on Guidebook's 429 when this process published it twice in the last minute."""
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[GuideRecord] = Outcome()
    current = await _existing(outcome, read.loaders(info).guide.load, guide_id, "guideId", "guide")
    if current is None:
        return outcome
    now = time.monotonic()
    recent = _published[guide_id]
    while recent and now - recent[0] >= 60:
        recent.popleft()
    if len(recent) >= PUBLISHES_PER_MINUTE:
        wait = round(60 - (now - recent[0]), 1)
        outcome.retry_after = wait
        outcome.problems = [
            Problem(
                "guideId",
                f"Guidebook allows {PUBLISHES_PER_MINUTE} publishes of a guide a minute; "
                f"retry in {wait:g} s",
                "RATE_LIMITED",
            )
        ]
        return outcome
    recent.append(now)
    try:
        await provider.publish_guide(guide_id)
    except UpstreamRateLimited as exc:
        outcome.retry_after = exc.extra.get("retryAfter")
        outcome.problems = [Problem("guideId", exc.message, "RATE_LIMITED")]
        return outcome
    except GuidebookInvalid as exc:
        outcome.problems = _upstream_problems(exc.errors)
        return outcome
    outcome.record = current
    return outcome


# --- bulk import -----------------------------------------------------------------------------

MAX_BULK_SESSIONS = 500
BULK_CONCURRENCY = 4


async def create_sessions(
    info: Info, items: list[dict[str, Any] | list[Problem]]
) -> list[Outcome[GuidebookSessionRecord]]:
    """Many creates, a few at a time, one outcome per item in order. Every item has an
    importId (the client's, or one derived from the item and its place in the call), and
    the guides' sessions are read first, so a retried call creates nothing twice."""
    authorize(info)
    for index, item in enumerate(items):
        if isinstance(item, dict) and not item.get("import_id"):
            item["import_id"] = _derived_import_id(item, index)
    guides = {item["guide"] for item in items if isinstance(item, dict)}
    existing = {guide: await _import_ids(info, guide) for guide in sorted(guides)}
    gate = asyncio.Semaphore(BULK_CONCURRENCY)

    async def one(item: dict[str, Any] | list[Problem]) -> Outcome[GuidebookSessionRecord]:
        if not isinstance(item, dict):
            return Outcome(problems=item)
        found = existing.get(item["guide"], {}).get(item["import_id"])
        if found is not None:
            return Outcome(record=found)
        async with gate:
            try:
                return await create_session(info, item, reuse=False)
            except UpstreamError as exc:
                # One item's failure is its own: the others still land and are reported.
                problem = Problem(None, exc.message, exc.code)
                return Outcome(problems=[problem])

    return list(await asyncio.gather(*(one(item) for item in items)))


def _derived_import_id(item: Mapping[str, Any], index: int) -> str:
    canonical = repr(sorted((k, str(v)) for k, v in item.items() if k != "import_id"))
    digest = hashlib.sha256(f"{index}\n{canonical}".encode()).hexdigest()[:24]
    return f"sessiongraph-bulk-{digest}"


async def _import_ids(info: Info, guide_id: int) -> dict[str, GuidebookSessionRecord]:
    try:
        return await read.provider(info).sessions_by_import_id(guide_id)
    except NotFound:
        return {}


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# --- shared --------------------------------------------------------------------------------


def _ensure_import_id(values: dict[str, Any]) -> bool:
    """The key that makes a lost create answer recoverable without a second create; the
    provider's error names it (`extensions.importId`) when the outcome stays unknown.

    True when the client chose it: a retry may carry it, so what holds it already is reused."""
    if values.get("import_id"):
        return True
    values["import_id"] = new_import_id()
    return False


def _required(values: Mapping[str, Any], names: tuple[str, ...]) -> list[Problem]:
    problems = []
    for name in names:
        if name in values and (values[name] is None or not str(values[name]).strip()):
            problems.append(Problem(input_name(name), "is required and must not be blank"))
    return problems


def _ordered(
    merged: Mapping[str, Any], given: Mapping[str, Any], start: str, end: str
) -> list[Problem]:
    first, last = merged.get(start), merged.get(end)
    touched = start in given or end in given
    if touched and isinstance(first, datetime) and isinstance(last, datetime) and last < first:
        return [Problem(input_name(end), f"must not be before {input_name(start)}")]
    return []


def _sanitize(values: dict[str, Any], *, span_style: bool) -> bool:
    html = values.get("description_html")
    if not isinstance(html, str):
        return False
    cleaned = sanitize_description(html, span_style=span_style)
    values["description_html"] = cleaned.html
    return cleaned.removed


def _missing(name: str | None, message: str) -> Problem:
    return Problem(name, message, "NOT_FOUND")


async def _existing(
    outcome: Outcome[Any],
    load: Callable[[int], Awaitable[R | None]],
    key: int,
    name: str,
    what: str,
) -> R | None:
    """The Guidebook `what` that `key` (the input field `name`) names; when there is none,
    the outcome is a NOT_FOUND userError on that field."""
    found = await load(key)
    if found is None:
        outcome.problems = [_missing(name, f"no Guidebook {what} {key}")]
    return found


def _fields_of(record: object) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]


def _wire(values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON for the upstream: timestamps in UTC with an explicit offset, lists as lists."""
    wire: dict[str, Any] = {}
    for name, value in values.items():
        if name in _TIMESTAMPS and isinstance(value, datetime):
            wire[name] = format_timestamp(value)
        elif isinstance(value, tuple):
            wire[name] = list(value)
        else:
            wire[name] = value
    return wire


def _upstream_problems(errors: tuple[FieldError, ...]) -> list[Problem]:
    return [Problem(input_name(error.field), error.message) for error in errors]


async def _send(outcome: Outcome[T], write: Callable[[], Awaitable[T]]) -> None:
    """Run one upstream write; its 400 field errors and 404 become userErrors."""
    try:
        outcome.record = await write()
    except GuidebookInvalid as exc:
        outcome.problems = _upstream_problems(exc.errors)
    except NotFound as exc:
        outcome.problems = [_missing("id", exc.message)]


async def _delete(key: int, delete: Callable[[], Awaitable[None]]) -> Outcome[None]:
    outcome: Outcome[None] = Outcome()
    await _send(outcome, delete)
    if not outcome.problems:
        outcome.deleted_id = key
    return outcome
