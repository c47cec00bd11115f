"""Guidebook Open API emulator: DRF-style guides, schedule tracks, locations and sessions.

Serves `/open-api/v1/` and `/open-api/v1.1/` as `shared/reference/guidebook.md` describes them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
import zoneinfo
from collections import deque
from collections.abc import Callable, Iterable, Mapping
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

from ._control import SandboxControl
from ._spec import EmulatorSpec

__all__ = ["SANDBOX_API_KEY", "SPEC", "create_app"]

SANDBOX_API_KEY = "sandbox-guidebook-key"
DEFAULT_DAILY_BUDGET = 10_000  # reference "Rate limits": 10,000 requests per account per day
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 500  # the only documented page_size maximum (leaderboard rankings)
DAY_SECONDS = 86_400.0
VERSIONS = frozenset({"v1", "v1.1"})
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+0000"
API_PREFIX = "/open-api/"

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
    if wait is None:
        return _json({"detail": "Request was throttled."}, 429)
    seconds = math.ceil(wait)
    return _json(
        {"detail": f"Request was throttled. Expected available in {seconds} seconds."},
        429,
        {"Retry-After": str(seconds)},
    )


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
    """What field parsers may consult: the store, the object's guide and the server root."""

    state: GuidebookState
    guide: int | None
    root: str


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
    return _pk(value, lambda key: key in ctx.state.tables["guides"])


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
    """Knobs a test may turn at run time through `POST /__sandbox/config` (clears the budget)."""

    daily_request_budget: int | None
    page_size: int
    honour_page_size: bool
    max_page_size: int

    def update(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            raise ValueError("config must be a JSON object")
        for key, value in payload.items():
            if key == "honour_page_size":
                valid = isinstance(value, bool)
            elif key in ("daily_request_budget", "page_size", "max_page_size"):
                positive = type(value) is int and value > 0
                valid = positive or (value is None and key == "daily_request_budget")
            else:
                raise ValueError(f"unknown config key: {key}")
            if not valid:
                raise ValueError(f"invalid value for {key}: {value!r}")
        for key, value in payload.items():
            setattr(self, key, value)


@dataclass
class GuidebookState:
    """The emulated account: its objects, id sequences and per-key request history."""

    api_keys: tuple[str, ...]
    defaults: Settings
    settings: Settings = field(init=False)
    owner: int = 0
    categories: frozenset[int] = frozenset()
    tables: dict[str, dict[int, Row]] = field(default_factory=dict)
    next_ids: dict[str, int] = field(default_factory=dict)
    history: dict[str, deque[float]] = field(default_factory=dict)
    redeem_changed: dict[int, float] = field(default_factory=dict)
    media: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        seed = orjson.loads(_seed_bytes())
        self.settings = Settings(**vars(self.defaults))
        self.owner = seed["owner"]
        self.categories = frozenset(item["id"] for item in seed["categories"])
        self.tables = {
            spec.table: {row["id"]: row for row in seed[spec.table]} for spec in RESOURCES.values()
        }
        self.next_ids = {name: max(rows) + 1 for name, rows in self.tables.items()}
        self.history.clear()
        self.redeem_changed.clear()
        self.media.clear()

    def throttle(self, key: str) -> web.Response | None:
        """Counts one request against the key's daily budget; the 429 once it is used up."""
        budget = self.settings.daily_request_budget
        if budget is None:
            return None
        now = time.monotonic()
        history = self.history.setdefault(key, deque())
        while history and now - history[0] >= DAY_SECONDS:
            history.popleft()
        if len(history) < budget:
            history.append(now)
            return None
        # DRF's SimpleRateThrottle.wait(): a sliding window, spread over the requests left.
        available = budget - len(history) + 1
        if available <= 0:
            return _throttled(None)
        return _throttled((DAY_SECONDS - (now - history[0])) / available)


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
    if not any(hmac.compare_digest(token, key.encode()) for key in keys):
        raise _detail(401, "Error decoding signature.", challenge)
    return parts[1]


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


class Api:
    """The DRF views over one `GuidebookState`."""

    def __init__(self, state: GuidebookState) -> None:
        self.state = state

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        resource = RESOURCES.get(info["resource"])
        if info["version"] not in VERSIONS or resource is None:
            return _html_404()
        try:
            key = _authenticate(request, self.state.api_keys)
            refusal = self.state.throttle(key)
            if refusal is not None:
                return refusal
            return await self._route(request, resource, info.get("pk"), info["version"])
        except ApiError as error:
            return error.response()

    async def _route(
        self, request: web.Request, resource: Resource, pk: str | None, version: str
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
                return _json(self._list(request, resource, version), headers=headers)
            row = await self._write(request, resource, None)
            return _json(self._show(resource, row), 201, headers)
        row = self._get(resource, pk)
        if method == "GET":
            return _json(self._show(resource, row), headers=headers)
        if method == "PATCH":
            row = await self._write(request, resource, row)
            return _json(self._show(resource, row), headers=headers)
        self._delete(resource, row)
        return web.Response(status=204, headers=headers)

    def _get(self, resource: Resource, pk: str) -> Row:
        try:
            row = self.state.tables[resource.table].get(int(pk))
        except ValueError:
            row = None
        if row is None:
            raise _detail(404, "Not found.")
        return row

    @staticmethod
    def _show(resource: Resource, row: Row) -> JsonDict:
        return {name: row.get(name) for name in resource.output}

    def _list(self, request: web.Request, resource: Resource, version: str) -> JsonDict:
        query = request.rel_url.query
        if version == "v1.1" and resource.guide_scoped and not query.get("guide"):
            raise ApiError(400, {"guide": ["This field is required."]})
        rows = self._filter(resource, query)
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
            "results": [self._show(resource, row) for row in rows[(page - 1) * size : page * size]],
        }

    def _filter(self, resource: Resource, query: MultiDictProxy[str]) -> list[Row]:
        errors: JsonDict = {}
        tests: list[Callable[[Row], bool]] = []
        for name, kind in resource.filters.items():
            values = [v for v in query.getall(name, []) if v != ""]
            if not values:
                continue
            try:
                tests.append(self._filter_test(name, kind, values))
            except Invalid as exc:
                errors[name] = [str(exc)]
        if errors:
            raise ApiError(400, errors)
        return [r for r in self.state.tables[resource.table].values() if all(t(r) for t in tests)]

    def _filter_test(self, name: str, kind: str, values: list[str]) -> Callable[[Row], bool]:
        value = values[-1]  # django-filter reads the last value of a single-valued filter
        if kind == "exact":
            return lambda row: row[name] == value
        if kind == "tracks":
            wanted = set()
            for item in values:
                try:
                    key = int(item)
                except ValueError:
                    raise Invalid(f"\u201c{item}\u201d is not a valid value.") from None
                if key not in self.state.tables["schedule_tracks"]:
                    raise Invalid(
                        f"Select a valid choice. {item} is not one of the available choices."
                    )
                wanted.add(key)
            return lambda row: not wanted.isdisjoint(row[name])
        if kind == "guide":
            if not value.isdigit() or int(value) not in self.state.tables["guides"]:
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

    async def _write(self, request: web.Request, resource: Resource, old: Row | None) -> Row:
        data, is_form = await _read_body(request, resource)
        guide = None if old is None else old.get("guide")
        ctx = Ctx(self.state, guide, f"{request.scheme}://{request.host}")
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
        table = self.state.tables[resource.table]
        base = resource.defaults if old is None else old
        # Fresh lists, so no two rows ever share a mutable default.
        row: Row = {key: list(v) if isinstance(v, list) else v for key, v in base.items()}
        row.update(changes)
        if old is None:
            row["id"] = self.state.next_ids[resource.table]
            row["created_at"] = datetime.now(UTC).strftime(TIME_FORMAT)
        if resource.validate is not None:
            errors = resource.validate(self.state, row, old)
            if errors:
                raise ApiError(400, errors)
        if old is None:
            self.state.next_ids[resource.table] += 1
        table[row["id"]] = row
        return row

    def _delete(self, resource: Resource, row: Row) -> None:
        del self.state.tables[resource.table][row["id"]]
        # Deleting a track or location detaches it from sessions, like a Django M2M cascade.
        if resource.table in ("schedule_tracks", "locations"):
            for session in self.state.tables["sessions"].values():
                if row["id"] in session[resource.table]:
                    session[resource.table] = [i for i in session[resource.table] if i != row["id"]]

    async def media(self, request: web.Request) -> web.Response:
        data = self.state.media.get(request.match_info["name"])
        if data is None:
            return _html_404()
        kind = "image/png" if request.match_info["name"].endswith(".png") else "image/jpeg"
        return web.Response(body=data, content_type=kind)

    async def config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                self.state.settings.update(await request.json())
            except ValueError as exc:
                return _json({"error": str(exc)}, 400)
            self.state.history.clear()
        used = sum(len(history) for history in self.state.history.values())
        return _json({**vars(self.state.settings), "requests_today": used})


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
        data = {
            name: list(form.getall(name)) if spec.many else form.getall(name)[-1]
            for name, spec in resource.fields.items()
            if name in form
        }
        return data, True
    raise _detail(
        415, f'Unsupported media type "{request.headers.get("Content-Type")}" in request.'
    )


def _html_404() -> web.Response:
    return web.Response(text=_DJANGO_404, status=404, content_type="text/html")


async def _fallback(request: web.Request) -> web.StreamResponse:
    # Django's APPEND_SLASH: a known endpoint without its slash is redirected, query kept.
    if request.path.startswith(API_PREFIX) and not request.path.endswith("/"):
        parts = request.path[len(API_PREFIX) :].split("/")
        if 2 <= len(parts) <= 3 and parts[0] in VERSIONS and parts[1] in RESOURCES:
            location = (
                request.path + "/" + (f"?{request.query_string}" if request.query_string else "")
            )
            return web.Response(status=301, headers={"Location": location})
    return _html_404()


def create_app(
    *,
    api_keys: Iterable[str] = (SANDBOX_API_KEY,),
    daily_request_budget: int | None = DEFAULT_DAILY_BUDGET,
    page_size: int = DEFAULT_PAGE_SIZE,
    honour_page_size: bool = True,
    max_page_size: int = MAX_PAGE_SIZE,
) -> web.Application:
    """The emulator; `daily_request_budget=None` turns the daily 429 off."""
    settings = Settings(daily_request_budget, page_size, honour_page_size, max_page_size)
    state = GuidebookState(tuple(api_keys), settings)
    api = Api(state)
    control = SandboxControl(fault_responder=fault_response)
    control.reset_hooks.append(state.reset)
    app = web.Application()
    control.install(app)
    app.router.add_route("GET", "/__sandbox/config", api.config)
    app.router.add_route("POST", "/__sandbox/config", api.config)
    app.router.add_route("*", API_PREFIX + "{version}/{resource}/", api.dispatch)
    app.router.add_route("*", API_PREFIX + "{version}/{resource}/{pk}/", api.dispatch)
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
