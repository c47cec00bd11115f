"""Guidebook mutations: the gateway credential, validation before sending, userErrors.

Inputs arrive as dicts keyed by upstream field names; only given fields are present (PATCH).
"""

from __future__ import annotations

import functools
import math
import re
import zoneinfo
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from ..auth import check_bearer
from ..errors import NotFound
from ..providers.guidebook import (
    FieldError,
    GuidebookInvalid,
    GuidebookSessionRecord,
    GuideRecord,
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


async def create_session(info: Info, values: dict[str, Any]) -> Outcome[GuidebookSessionRecord]:
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[GuidebookSessionRecord] = Outcome()
    chosen = _ensure_import_id(values)
    outcome.sanitized = _sanitize(values, span_style=provider.version == "v1.1")
    outcome.problems = _session_rules(values, values)
    outcome.problems += await _guide_references(info, values["guide"], values)
    if not outcome.problems:
        await _send(outcome, lambda: provider.create_session(_wire(values), reuse_existing=chosen))
    return outcome


async def update_session(
    info: Info, session_id: int, changes: dict[str, Any]
) -> Outcome[GuidebookSessionRecord]:
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[GuidebookSessionRecord] = Outcome()
    current = await read.loaders(info).session.load(session_id)
    if current is None:
        outcome.problems = [_missing("id", f"no Guidebook session {session_id}")]
        return outcome
    outcome.sanitized = _sanitize(changes, span_style=provider.version == "v1.1")
    merged = {**_fields_of(current), **changes}
    outcome.problems = _session_rules(merged, changes)
    outcome.problems += await _guide_references(info, current.guide, changes, check_guide=False)
    if not outcome.problems:
        await _send(outcome, lambda: provider.update_session(session_id, _wire(changes)))
    return outcome


async def delete_session(info: Info, session_id: int) -> Outcome[None]:
    authorize(info)
    provider = read.provider(info)
    return await _delete(session_id, lambda: provider.delete_session(session_id))


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
    if not outcome.problems and await read.loaders(info).guide.load(values["guide"]) is None:
        outcome.problems = [_missing("guideId", f"no Guidebook guide {values['guide']}")]
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


# --- guides --------------------------------------------------------------------------------


async def update_guide(info: Info, guide_id: int, changes: dict[str, Any]) -> Outcome[GuideRecord]:
    authorize(info)
    provider = read.provider(info)
    outcome: Outcome[GuideRecord] = Outcome()
    current = await read.loaders(info).guide.load(guide_id)
    if current is None:
        outcome.problems = [_missing("id", f"no Guidebook guide {guide_id}")]
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
