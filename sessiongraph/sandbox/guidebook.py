"""Guidebook Open API emulator: DRF-style guides, schedule tracks, locations and sessions.

Serves `/open-api/v1/` and `/open-api/v1.1/` as `shared/reference/guidebook.md` describes them,
for two accounts (organisations), each with its own API key and guides. Beside the API, under
`/__sandbox/`: `config` (runtime knobs, webhook settings), `guidebook/builder` (edits made in
Guidebook Builder rather than through the API, each sending its webhook event),
`guidebook/publishes` and `guidebook/webhooks` (what was published and delivered).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
import zoneinfo
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from ._control import CONTROL_PREFIX, SandboxControl
from ._spec import EmulatorSpec
from .guidebook_webhooks import SANDBOX_WEBHOOK_TOKEN, WebhookConfig, WebhookSender

__all__ = [
    "SANDBOX_ACCOUNT_ID",
    "SANDBOX_API_KEY",
    "SANDBOX_SECOND_ACCOUNT_ID",
    "SANDBOX_SECOND_API_KEY",
    "SANDBOX_WEBHOOK_TOKEN",
    "SPEC",
    "create_app",
]

# Keys belong to accounts (organisations); an account id is the `owner` of its guides.
SANDBOX_API_KEY = "sandbox-guidebook-key"
SANDBOX_ACCOUNT_ID = 90217  # owns the two seeded conferences
SANDBOX_SECOND_API_KEY = "sandbox-guidebook-key-second-account"
SANDBOX_SECOND_ACCOUNT_ID = 90388  # owns one small guide of its own
# Requests per account per UTC day: docs versions say 10,000 or 4,000, so it is configurable.
DEFAULT_DAILY_BUDGET = 10_000
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 500  # the only documented page_size maximum (leaderboard rankings)
DAY_SECONDS = 86_400.0
PUBLISH_LIMIT, PUBLISH_WINDOW = 2, 60.0  # "This endpoint has a rate limit of 2 requests per minute"
VERSIONS = frozenset({"v1", "v1.1"})
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+0000"
API_PREFIX = "/open-api/"
GUIDEBOOK_CONTROL = CONTROL_PREFIX + "guidebook/"

JsonDict = dict[str, Any]
Row = dict[str, Any]


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


class ApiError(Exception):
    """An error response in DRF's shape, raised anywhere below a view."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers

    def response(self) -> web.Response:
        return _json(self.body, self.status, self.headers)


def _detail(status: int, message: str, headers: Mapping[str, str] | None = None) -> ApiError:
    return ApiError(status, {"detail": message}, headers)


# Django answers unknown URLs before DRF sees them, with its plain HTML page.
_DJANGO_404 = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
    "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n"
    "</body>\n</html>\n"
)


def _throttled(wait: float | None) -> web.Response:
    """DRF's `Throttled`: the wait rounded up, in the detail and in `Retry-After`."""
    if wait is None:
        return _json({"detail": "Request was throttled."}, 429)
    seconds = math.ceil(wait)
    unit = "second" if seconds == 1 else "seconds"
    return _json(
        {"detail": f"Request was throttled. Expected available in {seconds} {unit}."},
        429,
        {"Retry-After": str(seconds)},
    )


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(TIME_FORMAT)


_FAULT_DETAILS = {
    400: "Bad request.",
    401: "Error decoding signature.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: 'Method "GET" not allowed.',
}


def fault_response(status: int, retry_after: float | None) -> web.StreamResponse:
    """What an injected fault looks like: DRF JSON for 4xx, a proxy's HTML page for 5xx."""
    if status == 429:
        return _throttled(retry_after)
    if status >= 500:
        reason = _reason(status)
        page = f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        page += f"<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
        return web.Response(text=page, status=status, content_type="text/html")
    return _json({"detail": _FAULT_DETAILS.get(status, _reason(status) + ".")}, status)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# --- field parsing ---------------------------------------------------------------------------


class Invalid(Exception):
    """One field's validation message."""


@dataclass
class Ctx:
    """What field parsers may consult: the store, the object's guide, the server root and the
    caller's account (None for Builder, which sees every account)."""

    state: GuidebookState
    guide: int | None
    root: str
    account: int | None = None


Parser = Callable[[Any, Ctx], Any]


@dataclass(frozen=True)
class FieldSpec:
    parse: Parser
    required: bool = False
    nullable: bool = True
    many: bool = False
    text: bool = False
    create_only: bool = False


_DATETIME_HELP = (
    "Datetime has wrong format. Use one of these formats instead: "
    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)
_TRUE = frozenset({"t", "y", "yes", "true", "on", "1"})
_FALSE = frozenset({"f", "n", "no", "false", "off", "0"})
_TRAILING_ZEROS = re.compile(r"\.0*\s*$")
_HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
_PNG, _JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"


def text(max_length: int | None = None, allow_blank: bool = True) -> Parser:
    def parse(value: Any, _ctx: Ctx) -> str:
        if isinstance(value, bool | dict | list):
            raise Invalid("Not a valid string.")
        result = str(value).strip()
        if not result and not allow_blank:
            raise Invalid("This field may not be blank.")
        if max_length is not None and len(result) > max_length:
            raise Invalid(f"Ensure this field has no more than {max_length} characters.")
        return result

    return parse


def integer(min_value: int | None = None) -> Parser:
    def parse(value: Any, _ctx: Ctx) -> int:
        try:
            result = int(_TRAILING_ZEROS.sub("", str(value)))
        except ValueError:
            raise Invalid("A valid integer is required.") from None
        if min_value is not None and result < min_value:
            raise Invalid(f"Ensure this value is greater than or equal to {min_value}.")
        return result

    return parse


def number(value: Any, _ctx: Ctx) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise Invalid("A valid number is required.") from None
    if not math.isfinite(result) or isinstance(value, bool | dict | list):
        raise Invalid("A valid number is required.")
    return result


def boolean(value: Any, _ctx: Ctx) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    token = value.lower() if isinstance(value, str) else None
    if token in _TRUE or token in _FALSE:
        return token in _TRUE
    raise Invalid("Must be a valid boolean.")


def timestamp(value: Any, _ctx: Ctx) -> str:
    if not isinstance(value, str):
        raise Invalid(_DATETIME_HELP)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(_DATETIME_HELP) from None
    # Guidebook stores UTC and reads naive input as UTC (reference "Timestamps").
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime(TIME_FORMAT)


def choice(*values: int) -> Parser:
    allowed = {str(v): v for v in values}

    def parse(value: Any, _ctx: Ctx) -> int:
        key = str(value)
        if isinstance(value, bool) or key not in allowed:
            raise Invalid(f'"{value}" is not a valid choice.')
        return allowed[key]

    return parse


def color(value: Any, ctx: Ctx) -> str | None:
    result: str = text()(value, ctx)
    if not result:
        return None
    if not _HEX_COLOR.match(result):
        raise Invalid("Enter a valid hex color, eg. #000000")
    return result


@cache
def _known_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return False
    return True


def tz_name(value: Any, ctx: Ctx) -> str:
    result: str = text()(value, ctx)
    if not _known_timezone(result):
        raise Invalid(f'"{result}" is not a valid choice.')
    return result


def _pk(value: Any, exists: Callable[[int], bool]) -> int:
    if isinstance(value, bool | dict | list | float):
        raise Invalid(f"Incorrect type. Expected pk value, received {type(value).__name__}.")
    try:
        key = int(value)
    except ValueError:
        raise Invalid(
            f"Incorrect type. Expected pk value, received {type(value).__name__}."
        ) from None
    if not exists(key):
        raise Invalid(f'Invalid pk "{value}" - object does not exist.')
    return key


def guide_ref(value: Any, ctx: Ctx) -> int:
    # Another account's guide is outside the caller's queryset: it does not exist for them.
    return _pk(value, lambda key: ctx.state.guide_visible(key, ctx.account))


def refs(table: str) -> Parser:
    """Many-to-many ids, limited to the object's guide as Guidebook's querysets are."""

    def exists(ctx: Ctx, key: int) -> bool:
        row = ctx.state.tables[table].get(key)
        return row is not None and (ctx.guide is None or row["guide"] == ctx.guide)

    def parse(value: Any, ctx: Ctx) -> list[int]:
        if not isinstance(value, list):
            raise Invalid(f'Expected a list of items but got type "{type(value).__name__}".')
        return [_pk(item, lambda key: exists(ctx, key)) for item in value]

    return parse


def category_refs(value: Any, ctx: Ctx) -> list[int]:
    if not isinstance(value, list):
        raise Invalid(f'Expected a list of items but got type "{type(value).__name__}".')
    return [_pk(item, ctx.state.categories.__contains__) for item in value]


_ADDRESS_KEYS = ("address", "city", "country", "state", "street", "zipcode")


def address(value: Any, _ctx: Ctx) -> JsonDict:
    if isinstance(value, str):
        # The form-encoded example sends the address object as a JSON string.
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise Invalid("Value must be valid JSON.") from None
    if not isinstance(value, dict):
        raise Invalid(f'Expected a dictionary of items but got type "{type(value).__name__}".')
    return {key: value[key] for key in _ADDRESS_KEYS if key in value}


def image(value: Any, ctx: Ctx) -> str:
    content = getattr(value, "file", None)
    if content is None:
        raise Invalid("The submitted data was not a file. Check the encoding type on the form.")
    data: bytes = content.read()
    if not data:
        raise Invalid("The submitted file is empty.")
    if data.startswith(_PNG):
        suffix = ".png"
    elif data.startswith(_JPEG):
        suffix = ".jpg"
    else:
        raise Invalid(
            "Upload a valid image. The file you uploaded was either not an image "
            "or a corrupted image."
        )
    name = hashlib.sha256(data).hexdigest()[:24] + suffix
    ctx.state.media[name] = data
    return f"{ctx.root}/media/upload/{name}"


# --- resources ---------------------------------------------------------------------------------


Validator = Callable[["GuidebookState", Row, Row | None], JsonDict]


@dataclass(frozen=True)
class Resource:
    """One DRF viewset: its fields, filters, ordering and allowed methods."""

    table: str
    output: tuple[str, ...]
    fields: Mapping[str, FieldSpec]
    defaults: Mapping[str, Any]
    filters: Mapping[str, str]
    orderings: frozenset[str] = frozenset()
    can_create: bool = True
    can_delete: bool = True
    guide_scoped: bool = True
    validate: Validator | None = None

    @property
    def list_allow(self) -> str:
        return "GET, POST, HEAD, OPTIONS" if self.can_create else "GET, HEAD, OPTIONS"

    @property
    def detail_allow(self) -> str:
        return (
            "GET, PATCH, DELETE, HEAD, OPTIONS" if self.can_delete else "GET, PATCH, HEAD, OPTIONS"
        )


def _requires(flag: bool, field_name: str, message: str, errors: JsonDict) -> None:
    if flag:
        errors.setdefault(field_name, []).append(message)


def _validate_session(_state: GuidebookState, row: Row, _old: Row | None) -> JsonDict:
    errors: JsonDict = {}
    # The reference lists these as dependencies of one field on another.
    _requires(
        row["require_login"] and not row["add_to_schedule"],
        "require_login",
        "require_login requires add_to_schedule to be true.",
        errors,
    )
    _requires(
        row["max_capacity"] is not None and not row["require_login"],
        "max_capacity",
        "max_capacity requires require_login to be true.",
        errors,
    )
    _requires(
        row["waitlist"] and row["max_capacity"] is None,
        "waitlist",
        "waitlist requires max_capacity to be set.",
        errors,
    )
    for name in ("registration_start_date", "registration_end_date"):
        _requires(
            row[name] is not None and not row["require_login"],
            name,
            f"{name} requires require_login to be true.",
            errors,
        )
    # Canonical UTC strings compare in time order.
    if row["end_time"] is not None and row["end_time"] < row["start_time"]:
        errors.setdefault("non_field_errors", []).append("End time must not be before start time.")
    return errors


def _validate_location(state: GuidebookState, row: Row, old: Row | None) -> JsonDict:
    errors: JsonDict = {}
    if row["location_type"] == 3:
        for name in ("latitude", "longitude"):
            _requires(
                row[name] is None,
                name,
                "This field is required for a Google Maps location (location_type 3).",
                errors,
            )
    if row["location_type"] == 1:
        own_id = None if old is None else old["id"]
        if any(
            other["guide"] == row["guide"] and other["location_type"] == 1 and other["id"] != own_id
            for other in state.tables["locations"].values()
        ):
            errors["non_field_errors"] = ["A guide can only have one Main Venue."]
    return errors


def _validate_guide(state: GuidebookState, row: Row, old: Row | None) -> JsonDict:
    if old is None or row["redeem_code"] == old["redeem_code"]:
        return {}
    last = state.redeem_changed.get(row["id"])
    if last is not None and time.monotonic() - last < 3600:
        return {"redeem_code": ["The passphrase can only be changed once per hour."]}
    state.redeem_changed[row["id"]] = time.monotonic()
    return {}


_HTML = FieldSpec(text(max_length=20_000), text=True)
_GUIDE = FieldSpec(guide_ref, required=True, nullable=False, create_only=True)
_IMPORT_ID = FieldSpec(text(), text=True)
_NAME = FieldSpec(text(allow_blank=False), required=True, nullable=False, text=True)
_FLAG = FieldSpec(boolean, nullable=False)
_WHEN = FieldSpec(timestamp)


def _names(*lines: str) -> tuple[str, ...]:
    return tuple(" ".join(lines).split())


RESOURCES: dict[str, Resource] = {
    "guides": Resource(
        table="guides",
        # redeem_code is a passphrase: writable, never read back (absent from the list example).
        output=_names(
            "id created_at owner name short_name description_html start_date end_date",
            "attendees_estimate timezone home_screen_menuitem privacy category",
        ),
        fields={
            "name": _NAME,
            "short_name": FieldSpec(text(allow_blank=False), nullable=False, text=True),
            "description_html": _HTML,
            "start_date": _WHEN,
            "end_date": _WHEN,
            "attendees_estimate": FieldSpec(integer(min_value=0)),
            "timezone": FieldSpec(tz_name, nullable=False, text=True),
            "home_screen_menuitem": FieldSpec(integer(min_value=1)),
            "privacy": FieldSpec(choice(1, 2, 3), nullable=False),
            "redeem_code": FieldSpec(text(), text=True),
            "category": FieldSpec(category_refs, nullable=False, many=True),
        },
        defaults={},
        filters={"owner": "number", "category__id": "number_in"},
        can_create=False,
        can_delete=False,
        guide_scoped=False,
        validate=_validate_guide,
    ),
    "schedule-tracks": Resource(
        table="schedule_tracks",
        output=("id", "created_at", "guide", "name", "color", "import_id"),
        fields={
            "guide": _GUIDE,
            "name": _NAME,
            "color": FieldSpec(color, text=True),
            "import_id": _IMPORT_ID,
        },
        defaults={"color": None, "import_id": None},
        filters={"guide": "guide", "id": "number", "import_id": "exact"},
    ),
    "locations": Resource(
        table="locations",
        output=_names(
            "id created_at guide name description location_type latitude longitude address",
            "import_id",
        ),
        fields={
            "guide": _GUIDE,
            "name": _NAME,
            "description": FieldSpec(text(), text=True),
            "location_type": FieldSpec(choice(1, 2, 3), required=True, nullable=False),
            "latitude": FieldSpec(number),
            "longitude": FieldSpec(number),
            "address": FieldSpec(address),
            "import_id": _IMPORT_ID,
        },
        defaults={
            "description": None,
            "latitude": None,
            "longitude": None,
            "address": None,
            "import_id": None,
        },
        filters={"guide": "guide", "location_type": "location_type"},
        validate=_validate_location,
    ),
    "sessions": Resource(
        table="sessions",
        output=_names(
            "id created_at start_time end_time all_day name description_html import_id",
            "allow_rating add_to_schedule guide schedule_tracks image locations rank",
            "require_login max_capacity waitlist registration_start_date",
            "registration_end_date",
        ),
        fields={
            "guide": _GUIDE,
            "name": _NAME,
            "description_html": _HTML,
            "start_time": FieldSpec(timestamp, required=True, nullable=False),
            "end_time": _WHEN,
            "all_day": _FLAG,
            "allow_rating": _FLAG,
            "add_to_schedule": _FLAG,
            "import_id": _IMPORT_ID,
            "schedule_tracks": FieldSpec(refs("schedule_tracks"), nullable=False, many=True),
            "locations": FieldSpec(refs("locations"), nullable=False, many=True),
            "image": FieldSpec(image),
            "rank": FieldSpec(number, nullable=False),
            "require_login": _FLAG,
            "max_capacity": FieldSpec(integer(min_value=0)),
            "waitlist": _FLAG,
            "registration_start_date": _WHEN,
            "registration_end_date": _WHEN,
        },
        defaults={
            "end_time": None,
            "all_day": False,
            "description_html": None,
            "import_id": None,
            "allow_rating": True,
            "add_to_schedule": True,
            "schedule_tracks": [],
            "image": None,
            "locations": [],
            "rank": 0.0,
            "require_login": False,
            "max_capacity": None,
            "waitlist": False,
            "registration_start_date": None,
            "registration_end_date": None,
        },
        filters={
            "guide": "guide",
            "schedule_tracks": "tracks",
            "id": "number",
            "import_id": "exact",
        },
        orderings=frozenset({"id", "start_time", "end_time"}),
        validate=_validate_session,
    ),
}


# --- state ---------------------------------------------------------------------------------------


@cache
def _seed_bytes() -> bytes:
    return (
        resources.files(__package__ or "sessiongraph.sandbox")
        .joinpath("data/guidebook/seed.json")
        .read_bytes()
    )


@dataclass
class Settings:
    """Knobs a test may turn at run time through `POST /__sandbox/config`."""

    daily_request_budget: int | None
    page_size: int
    honour_page_size: bool
    max_page_size: int
    # Shifts the emulator's clock (quota day, publish window, timestamps), e.g. to just before
    # midnight UTC, so a test can watch the daily quota reset.
    clock_offset_seconds: float = 0.0

    def updated(self, payload: Mapping[str, Any]) -> Settings:
        """A copy with `payload` applied; ValueError naming the first bad key."""
        for key, value in payload.items():
            if key == "honour_page_size":
                valid = isinstance(value, bool)
            elif key in ("daily_request_budget", "page_size", "max_page_size"):
                positive = type(value) is int and value > 0
                valid = positive or (value is None and key == "daily_request_budget")
            elif key == "clock_offset_seconds":
                valid = (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                )
            else:
                raise ValueError(f"unknown config key: {key}")
            if not valid:
                raise ValueError(f"invalid value for {key}: {value!r}")
        return Settings(**(vars(self) | dict(payload)))


@dataclass
class GuidebookState:
    """Every account's objects, id sequences (shared, like one database) and request history."""

    accounts: dict[str, int]  # API key -> account id (the `owner` of the account's guides)
    defaults: Settings
    clock: Callable[[], float] = time.time
    settings: Settings = field(init=False)
    admins: dict[int, JsonDict] = field(default_factory=dict)  # who edits in Builder, by account
    categories: frozenset[int] = frozenset()
    tables: dict[str, dict[int, Row]] = field(default_factory=dict)
    next_ids: dict[str, int] = field(default_factory=dict)
    usage: dict[int, tuple[int, int]] = field(default_factory=dict)  # account -> (UTC day, count)
    publish_history: dict[int, deque[float]] = field(default_factory=dict)
    publishes: list[JsonDict] = field(default_factory=list)
    redeem_changed: dict[int, float] = field(default_factory=dict)
    media: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        seed = orjson.loads(_seed_bytes())
        self.settings = Settings(**vars(self.defaults))
        self.admins = {account["id"]: account["admin"] for account in seed["accounts"]}
        self.categories = frozenset(item["id"] for item in seed["categories"])
        self.tables = {
            spec.table: {row["id"]: row for row in seed[spec.table]} for spec in RESOURCES.values()
        }
        self.next_ids = {name: max(rows) + 1 for name, rows in self.tables.items()}
        self.usage.clear()
        self.publish_history.clear()
        self.publishes.clear()
        self.redeem_changed.clear()
        self.media.clear()

    def now(self) -> float:
        return self.clock() + self.settings.clock_offset_seconds

    # --- accounts ----------------------------------------------------------------------------

    def guide_visible(self, guide_id: int, account: int | None) -> bool:
        row = self.tables["guides"].get(guide_id)
        return row is not None and (account is None or row["owner"] == account)

    def visible(self, resource: Resource, row: Row, account: int | None) -> bool:
        if account is None:
            return True
        if resource.table == "guides":
            return bool(row["owner"] == account)
        return self.guide_visible(row["guide"], account)

    # --- throttles ---------------------------------------------------------------------------

    def throttle(self, account: int) -> web.Response | None:
        """Counts one request against the account's quota for the UTC day; 429 once used up.

        The quota resets at midnight UTC, so the wait is the time until then.
        """
        now = self.now()
        day = int(now // DAY_SECONDS)
        seen_day, used = self.usage.get(account, (day, 0))
        if seen_day != day:
            used = 0
        budget = self.settings.daily_request_budget
        if budget is not None and used >= budget:
            self.usage[account] = (day, used)
            return _throttled((day + 1) * DAY_SECONDS - now)
        self.usage[account] = (day, used + 1)
        return None

    def requests_today(self) -> dict[int, int]:
        day = int(self.now() // DAY_SECONDS)
        return {account: used for account, (seen, used) in self.usage.items() if seen == day}

    def publish_throttle(self, guide: int) -> web.Response | None:
        """DRF's sliding-window throttle, 2 per minute, keyed by guide; refusals are not counted."""
        now = self.now()
        history = self.publish_history.setdefault(guide, deque())
        while history and now - history[0] >= PUBLISH_WINDOW:
            history.popleft()
        if len(history) < PUBLISH_LIMIT:
            history.append(now)
            return None
        return _throttled(min(PUBLISH_WINDOW, PUBLISH_WINDOW - (now - history[0])))

    # --- webhooks ----------------------------------------------------------------------------

    def event_properties(self, guide_id: int, version: str | None, **extra: Any) -> JsonDict:
        """The common properties of a metrics event; ids as strings, as Guidebook sends them."""
        guide = self.tables["guides"][guide_id]
        admin = self.admins.get(guide["owner"], {})
        properties: JsonDict = {
            "time": _stamp(self.now()),
            "guide_id": str(guide_id),
            "guide_name": guide["name"],
            "user_id": admin.get("user_id", str(guide["owner"])),
        }
        for name in ("first_name", "last_name", "company", "position", "email"):
            properties[name] = admin.get(name)
        properties["open_api_version"] = version
        properties.update(extra)
        return properties


# --- writes ------------------------------------------------------------------------------------


def prepare(
    state: GuidebookState,
    resource: Resource,
    data: JsonDict,
    is_form: bool,
    old: Row | None,
    ctx: Ctx,
) -> Row:
    """The row a create (`old` None) or partial update would store; ApiError 400 if invalid."""
    errors: JsonDict = {}
    changes: Row = {}
    for name, spec in resource.fields.items():
        if old is not None and spec.create_only:
            continue  # objects never move between guides
        if name not in data:
            if old is None and spec.required:
                errors[name] = ["This field is required."]
            continue
        value = data[name]
        # DRF reads an empty form value of a nullable non-text field as null.
        if is_form and value == "" and spec.nullable and not spec.text:
            value = None
        try:
            if value is None:
                if not spec.nullable:
                    raise Invalid("This field may not be null.")
                changes[name] = None
            else:
                changes[name] = spec.parse(value, ctx)
        except Invalid as exc:
            errors[name] = [str(exc)]
        if name == "guide" and name in changes:
            ctx.guide = changes[name]
    if errors:
        raise ApiError(400, errors)
    base = resource.defaults if old is None else old
    # Fresh lists, so no two rows ever share a mutable default.
    row: Row = {key: list(v) if isinstance(v, list) else v for key, v in base.items()}
    row.update(changes)
    if resource.validate is not None:
        errors = resource.validate(state, row, old)
        if errors:
            raise ApiError(400, errors)
    return row


def commit(state: GuidebookState, resource: Resource, row: Row, old: Row | None) -> Row:
    if old is None:
        row["id"] = state.next_ids[resource.table]
        row["created_at"] = _stamp(state.now())
        state.next_ids[resource.table] += 1
    state.tables[resource.table][row["id"]] = row
    return row


def remove(state: GuidebookState, resource: Resource, row: Row) -> None:
    del state.tables[resource.table][row["id"]]
    # Deleting a track or location detaches it from sessions, like a Django M2M cascade.
    if resource.table in ("schedule_tracks", "locations"):
        for session in state.tables["sessions"].values():
            if row["id"] in session[resource.table]:
                session[resource.table] = [i for i in session[resource.table] if i != row["id"]]


def _show(resource: Resource, row: Row) -> JsonDict:
    return {name: row.get(name) for name in resource.output}


# --- views ---------------------------------------------------------------------------------------


def _authenticate(request: web.Request, keys: Iterable[str]) -> str:
    header = request.headers.get("Authorization", "")
    parts = header.split()
    challenge = {"WWW-Authenticate": 'JWT realm="api"'}
    if not parts or parts[0].lower() != "jwt":
        raise _detail(401, "Authentication credentials were not provided.", challenge)
    if len(parts) == 1:
        raise _detail(401, "Invalid Authorization header. No credentials provided.", challenge)
    if len(parts) > 2:
        raise _detail(
            401,
            "Invalid Authorization header. Credentials string should not contain spaces.",
            challenge,
        )
    token = parts[1].encode()
    for key in keys:
        if hmac.compare_digest(token, key.encode()):
            return key
    raise _detail(401, "Error decoding signature.", challenge)


def _replace_query(url: str, key: str, value: int | None) -> str:
    # DRF rebuilds the query sorted, dropping `page` for the first page.
    scheme, netloc, path, query, fragment = urlsplit(url)
    params = parse_qs(query, keep_blank_values=True)
    if value is None:
        params.pop(key, None)
    else:
        params[key] = [str(value)]
    return urlunsplit(
        (scheme, netloc, path, urlencode(sorted(params.items()), doseq=True), fragment)
    )


def _sort(rows: list[Row], ordering: str | None, allowed: frozenset[str]) -> list[Row]:
    terms = [t.strip() for t in (ordering or "").split(",") if t.strip().lstrip("-") in allowed]
    # Sorting by the least significant key first; rows start in id order, the implicit tiebreak.
    for term in reversed(terms):
        name = term.lstrip("-")
        # Postgres puts NULLs last ascending and first descending; reverse=True keeps that.
        rows.sort(key=lambda r: (r[name] is None, r[name] or 0), reverse=term.startswith("-"))
    return rows


def _control_error(status: int, message: str, fields: Any = None) -> ApiError:
    body: JsonDict = {"error": message}
    if fields is not None:
        body["fields"] = fields
    return ApiError(status, body)


SESSIONS = RESOURCES["sessions"]
GUIDES = RESOURCES["guides"]
ACTIONS = frozenset({"publish"})  # the guide actions served; others are Django's 404 page
_PUBLISH_ALLOW = "POST, OPTIONS"


class Api:
    """The DRF views over one `GuidebookState`, plus the Builder simulation behind them."""

    def __init__(self, state: GuidebookState, webhooks: WebhookSender) -> None:
        self.state = state
        self.webhooks = webhooks
        self._builder_actions: dict[str, Callable[[JsonDict, str], JsonDict]] = {
            "create_session": self._builder_create,
            "update_session": self._builder_update,
            "delete_session": self._builder_delete,
            "delete_all_sessions": self._builder_delete_all,
            "csv_import": self._builder_csv_import,
            "publish": self._builder_publish,
        }

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        resource = RESOURCES.get(info["resource"])
        if info["version"] not in VERSIONS or resource is None:
            return _html_404()
        action = info.get("action")
        if action is not None and (resource is not GUIDES or action not in ACTIONS):
            return _html_404()
        try:
            key = _authenticate(request, self.state.accounts)
            account = self.state.accounts[key]
            refusal = self.state.throttle(account)
            if refusal is not None:
                return refusal
            if action is not None:
                return self._publish(request, info["pk"], info["version"], account)
            return await self._route(request, resource, info.get("pk"), info["version"], account)
        except ApiError as error:
            return error.response()

    async def _route(
        self, request: web.Request, resource: Resource, pk: str | None, version: str, account: int
    ) -> web.Response:
        method = request.method
        allow = resource.list_allow if pk is None else resource.detail_allow
        if method == "OPTIONS":
            return _json({"name": resource.table, "renders": ["application/json"]}, 200)
        if method == "HEAD":
            method = "GET"
        if method not in allow.split(", "):
            raise _detail(405, f'Method "{request.method}" not allowed.', {"Allow": allow})
        headers = {"Allow": allow}
        if pk is None:
            if method == "GET":
                return _json(self._list(request, resource, version, account), headers=headers)
            row = await self._write(request, resource, None, account)
            self._session_event(resource, "Builder-SessionCreated", row, version)
            return _json(_show(resource, row), 201, headers)
        row = self._get(resource, pk, account)
        if method == "GET":
            return _json(_show(resource, row), headers=headers)
        if method == "PATCH":
            row = await self._write(request, resource, row, account)
            self._session_event(resource, "Builder-SessionUpdated", row, version)
            return _json(_show(resource, row), headers=headers)
        remove(self.state, resource, row)
        self._session_event(resource, "Builder-SessionDeleted", row, version)
        return web.Response(status=204, headers=headers)

    def _get(self, resource: Resource, pk: str, account: int | None) -> Row:
        try:
            row = self.state.tables[resource.table].get(int(pk))
        except ValueError:
            row = None
        if row is None or not self.state.visible(resource, row, account):
            raise _detail(404, "Not found.")
        return row

    def _list(
        self, request: web.Request, resource: Resource, version: str, account: int
    ) -> JsonDict:
        query = request.rel_url.query
        if version == "v1.1" and resource.guide_scoped and not query.get("guide"):
            raise ApiError(400, {"guide": ["This field is required."]})
        rows = self._filter(resource, query, account)
        rows = _sort(rows, query.get("ordering"), resource.orderings)
        settings = self.state.settings
        size = settings.page_size
        if settings.honour_page_size:
            try:
                asked = int(query.get("page_size", ""))
            except ValueError:
                asked = 0
            if asked > 0:
                size = min(asked, settings.max_page_size)
        pages = max(1, math.ceil(len(rows) / size))
        raw_page = query.get("page", "1")
        try:
            page = pages if raw_page == "last" else int(raw_page)
        except ValueError:
            page = 0
        if not 1 <= page <= pages:
            raise _detail(404, "Invalid page.")
        url = str(request.url)
        return {
            "count": len(rows),
            "next": _replace_query(url, "page", page + 1) if page < pages else None,
            "previous": (
                None if page == 1 else _replace_query(url, "page", None if page == 2 else page - 1)
            ),
            "results": [_show(resource, row) for row in rows[(page - 1) * size : page * size]],
        }

    def _filter(self, resource: Resource, query: MultiDictProxy[str], account: int) -> list[Row]:
        errors: JsonDict = {}
        tests: list[Callable[[Row], bool]] = []
        for name, kind in resource.filters.items():
            values = [v for v in query.getall(name, []) if v != ""]
            if not values:
                continue
            try:
                tests.append(self._filter_test(name, kind, values, account))
            except Invalid as exc:
                errors[name] = [str(exc)]
        if errors:
            raise ApiError(400, errors)
        state = self.state
        return [
            row
            for row in state.tables[resource.table].values()
            if state.visible(resource, row, account) and all(test(row) for test in tests)
        ]

    def _filter_test(
        self, name: str, kind: str, values: list[str], account: int
    ) -> Callable[[Row], bool]:
        value = values[-1]  # django-filter reads the last value of a single-valued filter
        if kind == "exact":
            return lambda row: row[name] == value
        if kind == "tracks":
            tracks = RESOURCES["schedule-tracks"]
            wanted = set()
            for item in values:
                try:
                    key = int(item)
                except ValueError:
                    raise Invalid(f"\u201c{item}\u201d is not a valid value.") from None
                track = self.state.tables["schedule_tracks"].get(key)
                # The choices are the caller's own tracks.
                if track is None or not self.state.visible(tracks, track, account):
                    raise Invalid(
                        f"Select a valid choice. {item} is not one of the available choices."
                    )
                wanted.add(key)
            return lambda row: not wanted.isdisjoint(row[name])
        if kind == "guide":
            if not value.isdigit() or not self.state.guide_visible(int(value), account):
                raise Invalid(
                    "Select a valid choice. That choice is not one of the available choices."
                )
            return lambda row: row["guide"] == int(value)
        if kind == "location_type":
            if value not in ("1", "2", "3"):
                raise Invalid(
                    f"Select a valid choice. {value} is not one of the available choices."
                )
            return lambda row: row[name] == int(value)
        try:
            wanted_number = float(value)
        except ValueError:
            raise Invalid("Enter a number.") from None
        if kind == "number_in":  # `category__id` looks inside the guide's category list
            return lambda row: wanted_number in row[name.partition("__")[0]]
        return lambda row: row[name] == wanted_number

    async def _write(
        self, request: web.Request, resource: Resource, old: Row | None, account: int
    ) -> Row:
        data, is_form = await _read_body(request, resource)
        guide = None if old is None else old.get("guide")
        ctx = Ctx(self.state, guide, _root(request), account)
        row = prepare(self.state, resource, data, is_form, old, ctx)
        return commit(self.state, resource, row, old)

    # --- publishing --------------------------------------------------------------------------

    def _publish(self, request: web.Request, pk: str, version: str, account: int) -> web.Response:
        """`POST /guides/{id}/publish/`: 202, at most twice a minute per guide."""
        headers = {"Allow": _PUBLISH_ALLOW}
        if request.method == "OPTIONS":
            return _json({"name": "Publish", "renders": ["application/json"]}, headers=headers)
        if request.method != "POST":
            raise _detail(405, f'Method "{request.method}" not allowed.', headers)
        guide = self._get(GUIDES, pk, account)
        refusal = self.state.publish_throttle(guide["id"])
        if refusal is not None:
            return refusal
        # "attendees_estimate: Estimated attendance of the Guide. Must be filled to publish."
        if guide["attendees_estimate"] is None:
            raise ApiError(400, {"attendees_estimate": ["This field is required to publish."]})
        self._record_publish(guide, "open_api", version)
        body = {"id": guide["id"], "detail": "Publishing has been queued."}
        return _json(body, 202, headers)

    def _record_publish(self, guide: Row, source: str, version: str | None) -> JsonDict:
        record: JsonDict = {
            "guide": guide["id"],
            "account": guide["owner"],
            "source": source,
            "open_api_version": version,
            "time": _stamp(self.state.now()),
        }
        record["weid"] = self._emit("Builder-GuidePublished", guide["id"], version)
        self.state.publishes.append(record)
        return record

    # --- webhook events ----------------------------------------------------------------------

    def _emit(self, event: str, guide_id: int, version: str | None, **extra: Any) -> str | None:
        properties = self.state.event_properties(guide_id, version, **extra)
        owner: int = self.state.tables["guides"][guide_id]["owner"]
        return self.webhooks.send(event, owner, properties)

    def _session_event(
        self, resource: Resource, event: str, row: Row, version: str | None
    ) -> str | None:
        if resource is not SESSIONS:
            return None
        extra = {"session_id": str(row["id"]), "session_name": row["name"]}
        return self._emit(event, row["guide"], version, **extra)

    # --- Builder -------------------------------------------------------------------------------

    async def builder(self, request: web.Request) -> web.Response:
        """`POST /__sandbox/guidebook/builder`: an edit made in Builder, not through the API."""
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return _json({"error": "expected a JSON object with an action"}, 400)
        action = body.get("action")
        handler = self._builder_actions.get(action) if isinstance(action, str) else None
        if handler is None:
            known = ", ".join(sorted(self._builder_actions))
            return _json({"error": f"unknown action {action!r}; one of {known}"}, 400)
        try:
            return _json(handler(body, _root(request)))
        except ApiError as error:
            return error.response()

    def _builder_prepare(self, data: Any, old: Row | None, guide: int | None, root: str) -> Row:
        if not isinstance(data, dict):
            raise _control_error(400, "fields must be a JSON object")
        try:
            return prepare(self.state, SESSIONS, data, False, old, Ctx(self.state, guide, root))
        except ApiError as error:
            raise _control_error(400, "validation failed", error.body) from None

    def _builder_session(self, body: JsonDict) -> Row:
        key = body.get("id")
        row = self.state.tables["sessions"].get(key) if type(key) is int else None
        if row is None:
            raise _control_error(404, f"session {key!r} does not exist")
        return row

    def _builder_guide(self, body: JsonDict) -> Row:
        key = body.get("guide")
        row = self.state.tables["guides"].get(key) if type(key) is int else None
        if row is None:
            raise _control_error(404, f"guide {key!r} does not exist")
        return row

    def _builder_create(self, body: JsonDict, root: str) -> JsonDict:
        fields = body.get("fields", {})
        if "guide" in body and isinstance(fields, dict):
            fields = fields | {"guide": body["guide"]}
        row = commit(self.state, SESSIONS, self._builder_prepare(fields, None, None, root), None)
        weid = self._session_event(SESSIONS, "Builder-SessionCreated", row, None)
        return {"session": _show(SESSIONS, row), "weid": weid}

    def _builder_update(self, body: JsonDict, root: str) -> JsonDict:
        old = self._builder_session(body)
        row = self._builder_prepare(body.get("fields", {}), old, old["guide"], root)
        commit(self.state, SESSIONS, row, old)
        weid = self._session_event(SESSIONS, "Builder-SessionUpdated", row, None)
        return {"session": _show(SESSIONS, row), "weid": weid}

    def _builder_delete(self, body: JsonDict, _root: str) -> JsonDict:
        row = self._builder_session(body)
        remove(self.state, SESSIONS, row)
        weid = self._session_event(SESSIONS, "Builder-SessionDeleted", row, None)
        return {"deleted": [row["id"]], "weid": weid}

    def _builder_delete_all(self, body: JsonDict, _root: str) -> JsonDict:
        guide = self._builder_guide(body)
        sessions = self.state.tables["sessions"]
        doomed = [key for key, row in sessions.items() if row["guide"] == guide["id"]]
        for key in doomed:
            del sessions[key]
        weid = self._emit("Builder-AllSessionsInGuideDeleted", guide["id"], None)
        return {"deleted": doomed, "weid": weid}

    def _builder_csv_import(self, body: JsonDict, root: str) -> JsonDict:
        """A schedule spreadsheet: rows whose import_id the guide has update it, others are new.

        All or nothing, with one event for the whole import.
        """
        guide = self._builder_guide(body)
        items = body.get("sessions")
        if not isinstance(items, list) or not items:
            raise _control_error(400, "sessions must be a non-empty list of objects")
        existing = {
            row["import_id"]: row
            for row in self.state.tables["sessions"].values()
            if row["guide"] == guide["id"] and row["import_id"]
        }
        prepared: list[tuple[Row, Row | None]] = []
        errors: list[JsonDict] = []
        for item in items:
            if not isinstance(item, dict):
                errors.append({"non_field_errors": ["Expected an object."]})
                continue
            old = existing.get(item.get("import_id"))
            try:
                row = self._builder_prepare(item | {"guide": guide["id"]}, old, guide["id"], root)
            except ApiError as error:
                errors.append(error.body["fields"])
                continue
            errors.append({})
            prepared.append((row, old))
        if any(errors):
            raise _control_error(400, "validation failed", {"sessions": errors})
        created: list[int] = []
        updated: list[int] = []
        for row, old in prepared:
            commit(self.state, SESSIONS, row, old)
            (created if old is None else updated).append(row["id"])
        weid = self._emit("Builder-ScheduleCSVImport", guide["id"], None)
        return {"created": created, "updated": updated, "weid": weid}

    def _builder_publish(self, body: JsonDict, _root: str) -> JsonDict:
        return {"publish": self._record_publish(self._builder_guide(body), "builder", None)}

    # --- other control endpoints -------------------------------------------------------------

    async def publishes(self, _request: web.Request) -> web.Response:
        return _json({"publishes": self.state.publishes})

    async def media(self, request: web.Request) -> web.Response:
        data = self.state.media.get(request.match_info["name"])
        if data is None:
            return _html_404()
        kind = "image/png" if request.match_info["name"].endswith(".png") else "image/jpeg"
        return web.Response(body=data, content_type=kind)

    async def config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                payload = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                payload = None
            if not isinstance(payload, dict):
                return _json({"error": "config must be a JSON object"}, 400)
            hook_keys = WebhookConfig.keys()
            try:
                settings = self.state.settings.updated(
                    {k: v for k, v in payload.items() if k not in hook_keys}
                )
                hooks = self.webhooks.config.updated(
                    {k: v for k, v in payload.items() if k in hook_keys}
                )
            except ValueError as exc:
                return _json({"error": str(exc)}, 400)
            self.state.settings, self.webhooks.config = settings, hooks
            if "daily_request_budget" in payload:
                self.state.usage.clear()
        return _json(self._config_view())

    def _config_view(self) -> JsonDict:
        used = self.state.requests_today()
        now = self.state.now()
        return {
            **vars(self.state.settings),
            **self.webhooks.config.as_json(),
            "requests_today": sum(used.values()),
            "requests_today_by_account": {str(k): v for k, v in sorted(used.items())},
            "quota_resets_in_seconds": math.ceil((now // DAY_SECONDS + 1) * DAY_SECONDS - now),
            "now": _stamp(now),
        }


def _root(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _form_value(value: Any) -> Any:
    """A non-file multipart part arrives as bytes; an empty one is a file input left empty,
    which Django drops (the field is then absent, not cleared)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace") if value else None
    return value


async def _read_body(request: web.Request, resource: Resource) -> tuple[JsonDict, bool]:
    if not request.body_exists:
        return {}, False
    kind = request.content_type
    if kind == "application/json" or kind.endswith("+json"):
        try:
            payload = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise _detail(400, f"JSON parse error - {exc}") from None
        if not isinstance(payload, dict):
            got = type(payload).__name__
            raise ApiError(
                400, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {got}."]}
            )
        return payload, False
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        data: JsonDict = {}
        for name, spec in resource.fields.items():
            values = [v for v in map(_form_value, form.getall(name, [])) if v is not None]
            if values:
                data[name] = values if spec.many else values[-1]
        return data, True
    raise _detail(
        415, f'Unsupported media type "{request.headers.get("Content-Type")}" in request.'
    )


def _html_404() -> web.Response:
    return web.Response(text=_DJANGO_404, status=404, content_type="text/html")


def _known_endpoint(parts: Sequence[str]) -> bool:
    if len(parts) < 2 or parts[0] not in VERSIONS or parts[1] not in RESOURCES:
        return False
    return len(parts) <= 3 or (len(parts) == 4 and parts[1] == "guides" and parts[3] in ACTIONS)


async def _fallback(request: web.Request) -> web.StreamResponse:
    # Django's APPEND_SLASH: a known endpoint without its slash is redirected, query kept.
    path = request.path
    if (
        path.startswith(API_PREFIX)
        and not path.endswith("/")
        and _known_endpoint(path[len(API_PREFIX) :].split("/"))
    ):
        location = path + "/" + (f"?{request.query_string}" if request.query_string else "")
        return web.Response(status=301, headers={"Location": location})
    return _html_404()


def create_app(
    *,
    api_keys: Iterable[str] = (SANDBOX_API_KEY,),
    accounts: Mapping[str, int] | None = None,
    daily_request_budget: int | None = DEFAULT_DAILY_BUDGET,
    page_size: int = DEFAULT_PAGE_SIZE,
    honour_page_size: bool = True,
    max_page_size: int = MAX_PAGE_SIZE,
    webhook_url: str | None = None,
    webhook_token: str | None = SANDBOX_WEBHOOK_TOKEN,
    webhook_events: Iterable[str] | None = None,
    webhook_accounts: Iterable[int] | None = None,
    webhook_timeout_seconds: float = 2.0,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The emulator.

    `api_keys` all belong to the first seeded account (`SANDBOX_ACCOUNT_ID`); `accounts` maps
    further keys to account ids and defaults to `{SANDBOX_SECOND_API_KEY:
    SANDBOX_SECOND_ACCOUNT_ID}` (an id with no seeded guides is an account that owns nothing).
    The daily quota is per account and per UTC day; `daily_request_budget=None` turns it off.
    `clock` (seconds since the epoch) drives the quota day, the publish window and timestamps.
    """
    second = {SANDBOX_SECOND_API_KEY: SANDBOX_SECOND_ACCOUNT_ID} if accounts is None else accounts
    key_accounts = {key: SANDBOX_ACCOUNT_ID for key in api_keys} | dict(second)
    settings = Settings(daily_request_budget, page_size, honour_page_size, max_page_size)
    hooks = WebhookConfig().updated(
        {
            "webhook_url": webhook_url,
            "webhook_token": webhook_token,
            "webhook_events": None if webhook_events is None else list(webhook_events),
            "webhook_accounts": None if webhook_accounts is None else list(webhook_accounts),
            "webhook_timeout_seconds": webhook_timeout_seconds,
        }
    )
    state = GuidebookState(key_accounts, settings, clock)
    webhooks = WebhookSender(hooks)
    api = Api(state, webhooks)
    control = SandboxControl(fault_responder=fault_response)
    control.reset_hooks.extend((state.reset, webhooks.reset))
    app = web.Application()
    control.install(app)
    webhooks.install(app, GUIDEBOOK_CONTROL)
    app.router.add_route("GET", CONTROL_PREFIX + "config", api.config)
    app.router.add_route("POST", CONTROL_PREFIX + "config", api.config)
    app.router.add_post(GUIDEBOOK_CONTROL + "builder", api.builder)
    app.router.add_get(GUIDEBOOK_CONTROL + "publishes", api.publishes)
    app.router.add_route("*", API_PREFIX + "{version}/{resource}/", api.dispatch)
    app.router.add_route("*", API_PREFIX + "{version}/{resource}/{pk}/", api.dispatch)
    app.router.add_route("*", API_PREFIX + "{version}/{resource}/{pk}/{action}/", api.dispatch)
    app.router.add_get("/media/upload/{name}", api.media)
    app.router.add_route("*", "/{tail:.*}", _fallback)
    return app


SPEC = EmulatorSpec(
    name="guidebook",
    create_app=create_app,
    base_path="/open-api/v1",
    gateway_env=lambda root: {
        "GUIDEBOOK_URL": root + "/open-api/v1",
        "GUIDEBOOK_API_KEY": SANDBOX_API_KEY,
    },
)
