"""Guidebook Open API (`/open-api/v1` or `/v1.1`): guides, schedule tracks, locations, sessions.

Written from `shared/reference/guidebook.md`: DRF page-number lists, `{field: [messages]}` errors.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

import orjson

from ..errors import (
    NotFound,
    UpstreamError,
    UpstreamQuotaSpent,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ._http import FilePart, RetryPolicy, UpstreamClient, UpstreamResponse

__all__ = [
    "WEBHOOK_EVENTS",
    "ChangeListener",
    "FieldError",
    "GuideRecord",
    "GuidebookInvalid",
    "GuidebookProvider",
    "GuidebookSessionRecord",
    "LocationAddress",
    "LocationRecord",
    "Page",
    "ScheduleTrackRecord",
    "SessionQuery",
    "WebhookChange",
    "answer_lost",
    "field_errors",
    "format_timestamp",
    "parse_timestamp",
    "webhook_change",
    "webhook_id",
    "webhook_tags",
]

logger = logging.getLogger("sessiongraph.guidebook")

UPSTREAM = "guidebook"
GUIDES, TRACKS, LOCATIONS, SESSIONS = "guides", "schedule-tracks", "locations", "sessions"
# A list that claims more pages than this is looping (a `next` that never ends).
MAX_PAGES = 1000
# Retries of the look-up that finds out whether a write whose answer was lost happened.
LOOKUP_RETRIES = 3
# The documented input example: microseconds and an explicit UTC offset.
_SEND_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+0000"

# Guidebook Builder's webhook events that change what this provider caches.
SESSION_CREATED = "Builder-SessionCreated"
SESSION_UPDATED = "Builder-SessionUpdated"
SESSION_DELETED = "Builder-SessionDeleted"
ALL_SESSIONS_DELETED = "Builder-AllSessionsInGuideDeleted"
SCHEDULE_CSV_IMPORT = "Builder-ScheduleCSVImport"
GUIDE_PUBLISHED = "Builder-GuidePublished"
GUIDE_CLONED = "Builder-GuideCloned"
WEBHOOK_EVENTS = frozenset(
    {
        SESSION_CREATED,
        SESSION_UPDATED,
        SESSION_DELETED,
        ALL_SESSIONS_DELETED,
        SCHEDULE_CSV_IMPORT,
        GUIDE_PUBLISHED,
        GUIDE_CLONED,
    }
)
# Told of each change a webhook reported: (event, guide_id, session_id), ids None if unknown.
ChangeListener = Callable[[str, int | None, int | None], Awaitable[None]]


def parse_timestamp(value: Any) -> datetime | None:
    """`2017-09-18T22:13:25.766623+0000` or `…+00:00` (Python 3.11 reads both); naive is UTC."""
    if type(value) is not str or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_timestamp(moment: datetime) -> str:
    """What we send: UTC with an explicit offset, never a naive string."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime(_SEND_FORMAT)


@dataclass(frozen=True, slots=True)
class LocationAddress:
    address: str | None = None
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zipcode: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class GuideRecord:
    """A guide (event app); privacy, redeem_code and home_screen_menuitem may be absent."""

    id: int
    created_at: datetime | None = None
    owner: int | None = None
    name: str | None = None
    short_name: str | None = None
    description_html: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    attendees_estimate: int | None = None
    timezone: str | None = None
    home_screen_menuitem: int | None = None
    privacy: int | None = None
    redeem_code: str | None = None
    category: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ScheduleTrackRecord:
    id: int
    guide: int
    name: str | None = None
    color: str | None = None
    import_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LocationRecord:
    id: int
    guide: int
    name: str | None = None
    description: str | None = None
    location_type: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    address: LocationAddress | None = None
    import_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class GuidebookSessionRecord:
    id: int
    guide: int
    name: str | None = None
    description_html: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    all_day: bool | None = None
    allow_rating: bool | None = None
    add_to_schedule: bool | None = None
    import_id: str | None = None
    schedule_tracks: tuple[int, ...] = ()
    locations: tuple[int, ...] = ()
    image: str | None = None
    rank: float | None = None
    require_login: bool | None = None
    max_capacity: int | None = None
    waitlist: bool | None = None
    registration_start_date: datetime | None = None
    registration_end_date: datetime | None = None
    created_at: datetime | None = None


RecordT = TypeVar(
    "RecordT", GuideRecord, ScheduleTrackRecord, LocationRecord, GuidebookSessionRecord
)
# What a create makes: objects below a guide with an `import_id` to find them by.
_Created = TypeVar("_Created", ScheduleTrackRecord, GuidebookSessionRecord, LocationRecord)


def _as_int(value: Any) -> int | None:
    return value if type(value) is int else None


def _as_float(value: Any) -> float | None:
    # JSON writes 2.0 as 2; a bool is never a number here.
    return float(value) if type(value) in (int, float) else None


def _as_bool(value: Any) -> bool | None:
    return value if type(value) is bool else None


def _as_str(value: Any) -> str | None:
    return value if type(value) is str else None


def _as_ids(value: Any) -> tuple[int, ...]:
    return tuple(v for v in value if type(v) is int) if isinstance(value, list) else ()


def _as_address(value: Any) -> LocationAddress | None:
    if not isinstance(value, dict):
        return None
    return LocationAddress(**{f.name: _as_str(value.get(f.name)) for f in fields(LocationAddress)})


_BY_TYPE: dict[str, Callable[[Any], Any]] = {
    "int": _as_int,
    "int | None": _as_int,
    "float | None": _as_float,
    "bool | None": _as_bool,
    "str | None": _as_str,
    "datetime | None": parse_timestamp,
    "tuple[int, ...]": _as_ids,
    "LocationAddress | None": _as_address,
}
_PLANS: dict[type[Any], tuple[tuple[str, Callable[[Any], Any]], ...]] = {}


def to_record(cls: type[RecordT], row: Any) -> RecordT | None:
    """One JSON object as a record; unknown fields are ignored, mistyped ones become None."""
    if not isinstance(row, dict):
        return None
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = tuple((f.name, _BY_TYPE[str(f.type)]) for f in fields(cls))
    values = {name: convert(row.get(name)) for name, convert in plan}
    # Without its id (or, below a guide, its guide) a row cannot be referred to at all.
    if values["id"] is None or values.get("guide", 0) is None:
        return None
    return cls(**values)


@dataclass(frozen=True)
class FieldError:
    """One message from a DRF error body; `field` is the upstream field name or None."""

    field: str | None
    message: str


class GuidebookInvalid(UpstreamRejected):
    """A 400: the upstream refused the values we sent; `errors` say which and why."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        summary = "; ".join(e.message for e in errors[:3]) or "invalid request"
        super().__init__(UPSTREAM, f"guidebook rejected the values: {summary}", status=400)
        self.errors = tuple(errors)


def field_errors(body: bytes) -> list[FieldError]:
    """DRF error bodies read defensively: dict of lists, nested dicts, `detail`, strings."""
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
    found: list[FieldError] = []
    _collect(payload, None, found)
    return found or [FieldError(None, "Guidebook refused the request without saying why.")]


def _collect(value: Any, field: str | None, found: list[FieldError]) -> None:
    if isinstance(value, str):
        found.append(FieldError(field, value[:500]))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            # A list of dicts is per-item errors of a list field (`schedule_tracks.1`).
            _collect(item, f"{field}.{index}" if isinstance(item, dict) and field else field, found)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = None if key in ("detail", "non_field_errors") else str(key)
            _collect(item, f"{field}.{name}" if field and name else (name or field), found)


@dataclass(frozen=True)
class Page(Generic[RecordT]):
    """Part of an upstream list: `records` from position `offset`, of `total` (`count`)."""

    records: list[RecordT]
    total: int
    offset: int


@dataclass(frozen=True)
class SessionQuery:
    """The upstream filters and ordering of one session list (all optional but the guide)."""

    guide: int
    schedule_track: int | None = None
    id: int | None = None
    import_id: str | None = None
    # DRF `ordering`: field names, `-` for descending, applied left to right.
    ordering: tuple[str, ...] = ()

    def query(self) -> str:
        params = [f"guide={self.guide}"]
        for name, value in (
            ("schedule_tracks", self.schedule_track),
            ("id", self.id),
            ("import_id", self.import_id),
        ):
            if value is not None:
                params.append(f"{name}={quote(str(value), safe='')}")
        if self.ordering:
            params.append("ordering=" + ",".join(self.ordering))
        return "&".join(params)


class _PastTheEnd(Exception):
    """DRF answers 404 `Invalid page.` for a page beyond the last one."""


@dataclass(frozen=True)
class _Fetched:
    rows: list[Any]
    count: int
    next_query: str | None


class GuidebookProvider:
    """Reads and writes Guidebook; writes are sent once, except a create proven not to exist."""

    name = UPSTREAM

    def __init__(self, client: UpstreamClient, *, page_size: int = 100) -> None:
        self.client = client
        self.page_size = page_size
        # What the upstream really returns per page; lower than `page_size` once it caps us.
        self.effective_page_size = page_size
        self.version = "v1.1" if client.base_url.endswith("/v1.1") else "v1"
        # Awaited after each webhook change, once its stale reads are dropped (for
        # subscriptions); each must be quick, as Guidebook waits for the webhook's answer.
        self.change_listeners: list[ChangeListener] = []

    def with_client(self, client: UpstreamClient) -> GuidebookProvider:
        """The same provider over `client` (a view of this one's with another account's key)."""
        other = GuidebookProvider(client, page_size=self.page_size)
        other.effective_page_size = self.effective_page_size
        other.change_listeners = self.change_listeners
        return other

    # --- reads --------------------------------------------------------------------------------

    async def guides(self, offset: int = 0, limit: int | None = None) -> Page[GuideRecord]:
        return await self._window(GuideRecord, GUIDES, "", offset, limit)

    async def guide(self, guide_id: int) -> GuideRecord | None:
        return await self._one(GuideRecord, GUIDES, guide_id)

    async def schedule_tracks(self, guide_id: int) -> list[ScheduleTrackRecord]:
        page = await self._window(ScheduleTrackRecord, TRACKS, f"guide={guide_id}", 0, None)
        return page.records

    async def schedule_track(self, track_id: int) -> ScheduleTrackRecord | None:
        return await self._one(ScheduleTrackRecord, TRACKS, track_id)

    async def locations(self, guide_id: int) -> list[LocationRecord]:
        page = await self._window(LocationRecord, LOCATIONS, f"guide={guide_id}", 0, None)
        return page.records

    async def location(self, location_id: int) -> LocationRecord | None:
        return await self._one(LocationRecord, LOCATIONS, location_id)

    async def sessions(
        self, query: SessionQuery, offset: int = 0, limit: int | None = None
    ) -> Page[GuidebookSessionRecord]:
        """`limit` None: every page, following `next` until it is null."""
        return await self._window(GuidebookSessionRecord, SESSIONS, query.query(), offset, limit)

    async def session(self, session_id: int) -> GuidebookSessionRecord | None:
        # No id-list filter upstream: objects by id cost one GET each (the loaders batch them).
        return await self._one(GuidebookSessionRecord, SESSIONS, session_id)

    async def _one(self, cls: type[RecordT], collection: str, key: int) -> RecordT | None:
        response = await self.client.get(
            f"{collection}/{key}/",
            tags=(collection, f"{collection}:{key}", _items_scope(collection)),
        )
        if response.status == 404:
            return None
        return to_record(cls, self._json(response))

    async def _window(
        self, cls: type[RecordT], collection: str, query: str, offset: int, limit: int | None
    ) -> Page[RecordT]:
        """Records [offset, offset+limit) fetching only the pages that hold them."""
        size = self.effective_page_size
        page = offset // size + 1
        try:
            fetched = await self._fetch(collection, query, page)
        except _PastTheEnd:
            return Page([], (await self._fetch(collection, query, 1)).count, offset)
        if fetched.next_query is not None and 0 < len(fetched.rows) < size:
            # The upstream ignored or capped `page_size`: learn its size, then re-aim.
            self.effective_page_size = size = len(fetched.rows)
            if offset // size + 1 != page:
                return await self._window(cls, collection, query, offset, limit)
        rows = fetched.rows[offset - (page - 1) * size :]
        following = fetched.next_query
        for _ in range(MAX_PAGES):
            if following is None or (limit is not None and len(rows) >= limit):
                break
            more = await self._fetch(collection, following, None)
            rows.extend(more.rows)
            following = more.next_query
        else:
            raise UpstreamUnavailable(UPSTREAM, f"guidebook /{collection}/ never ends its pages")
        if limit is not None:
            rows = rows[:limit]
        records = [r for r in (to_record(cls, row) for row in rows) if r is not None]
        return Page(records, fetched.count, offset)

    async def _fetch(self, collection: str, query: str, page: int | None) -> _Fetched:
        """One list page: by number, or (page None) the query string of a `next` link."""
        if page is not None:
            parts = [query] if query else []
            if page > 1:
                parts.append(f"page={page}")
            parts.append(f"page_size={self.page_size}")
            query = "&".join(parts)
        response = await self.client.get(
            f"{collection}/", query, tags=(collection, _list_scope(collection, query))
        )
        if response.status == 404 and page is not None and page > 1:
            raise _PastTheEnd
        payload = self._json(response)
        rows, count = payload.get("results"), payload.get("count")
        if not isinstance(rows, list):
            raise UpstreamUnavailable(UPSTREAM, "guidebook sent a list without `results`")
        link = payload.get("next")
        # Only the query string of `next` is used: our key goes to the configured host only.
        next_query = urlsplit(link).query if isinstance(link, str) and link else None
        return _Fetched(rows, count if type(count) is int else len(rows), next_query)

    def _json(self, response: UpstreamResponse) -> dict[str, Any]:
        if response.status == 404:
            raise NotFound("no such Guidebook object")
        if response.status == 400:
            raise GuidebookInvalid(field_errors(response.body))
        if response.status >= 400:
            raise self.client.error_for(response)
        try:
            payload = response.json()
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnavailable(
                UPSTREAM, "guidebook sent a response that is not valid JSON", status=response.status
            ) from exc
        if not isinstance(payload, dict):
            raise UpstreamUnavailable(UPSTREAM, "guidebook sent an unexpected response shape")
        return payload

    # --- webhooks -----------------------------------------------------------------------------

    async def apply_webhook(self, change: WebhookChange) -> None:
        """Drops the cached reads `change` made stale, then tells the change listeners.

        Never calls Guidebook: the tags come from the webhook's own ids.
        """
        if not change.tags:
            return
        await self.client.invalidate(change.tags)
        for listener in list(self.change_listeners):
            try:
                await listener(change.event, change.guide_id, change.session_id)
            except Exception:
                # A listener's trouble is not Guidebook's: the webhook is still accepted.
                logger.exception("guidebook change listener failed", extra={"event": change.event})

    # --- writes -------------------------------------------------------------------------------

    async def create_session(
        self, values: Mapping[str, Any], *, reuse_existing: bool = False
    ) -> GuidebookSessionRecord:
        """POST a session without ever creating it twice (see `_create`)."""
        return await self._create(GuidebookSessionRecord, SESSIONS, values, reuse_existing)

    async def update_session(
        self, session_id: int, changes: Mapping[str, Any]
    ) -> GuidebookSessionRecord:
        return await self._update(GuidebookSessionRecord, SESSIONS, session_id, changes)

    async def delete_session(self, session_id: int) -> None:
        await self._delete(SESSIONS, session_id)

    async def _write_scopes(
        self, collection: str, key: int | None, guide: int | None
    ) -> tuple[str, ...]:
        """The cached reads a write to `collection` (item `key`, in `guide`) can change.

        Only the guide's lists and the item itself: other guides' cached reads stay. Without
        a known guide, every cached read of the collection goes.
        """
        if key is not None and guide is None and self.client.cache.enabled:
            cls = _RECORDS[collection]
            found = await self._one(cls, collection, key)
            guide = getattr(found, "guide", None) if found is not None else None
        if guide is None:
            return (collection,)
        scopes = [f"{collection}@guide:{guide}"]
        if key is not None:
            scopes.append(f"{collection}:{key}")
        if collection in (TRACKS, LOCATIONS) and key is not None:
            # A track's or location's sessions lose it from their `schedule_tracks`/`locations`.
            scopes.append(SESSIONS)
        if collection == GUIDES:
            scopes.append(f"{GUIDES}@all")
        return tuple(scopes)

    async def create_schedule_track(
        self, values: Mapping[str, Any], *, reuse_existing: bool = False
    ) -> ScheduleTrackRecord:
        """POST a schedule track without ever creating it twice (see `_create`)."""
        return await self._create(ScheduleTrackRecord, TRACKS, values, reuse_existing)

    async def update_schedule_track(
        self, track_id: int, changes: Mapping[str, Any]
    ) -> ScheduleTrackRecord:
        return await self._update(ScheduleTrackRecord, TRACKS, track_id, changes)

    async def delete_schedule_track(self, track_id: int) -> None:
        await self._delete(TRACKS, track_id)

    async def update_guide(self, guide_id: int, changes: Mapping[str, Any]) -> GuideRecord:
        return await self._update(GuideRecord, GUIDES, guide_id, changes)

    async def create_location(
        self, values: Mapping[str, Any], *, reuse_existing: bool = False
    ) -> LocationRecord:
        """POST a location without ever creating it twice (see `_create`)."""
        return await self._create(LocationRecord, LOCATIONS, values, reuse_existing)

    async def update_location(self, location_id: int, changes: Mapping[str, Any]) -> LocationRecord:
        return await self._update(LocationRecord, LOCATIONS, location_id, changes)

    async def delete_location(self, location_id: int) -> None:
        await self._delete(LOCATIONS, location_id)

    async def publish_guide(self, guide_id: int) -> None:
        """`POST /guides/{id}/publish/` (202 Accepted: Guidebook publishes in the background).
        Never resent: a second publish costs one of the two allowed a minute."""
        scopes = (f"{GUIDES}:{guide_id}", f"{GUIDES}@all")
        try:
            response = await self._send("POST", f"{GUIDES}/{guide_id}/publish/", {}, scopes)
        except UpstreamError as exc:
            if answer_lost(exc):
                raise _unknown_outcome(exc) from exc
            raise
        if response.status not in (200, 201, 202, 204):
            self._json(response)  # raises the coded error

    async def set_session_image(
        self, session_id: int, image: FilePart | None
    ) -> GuidebookSessionRecord:
        """A multipart PATCH with the image as its only part (PNG or JPEG, checked by the
        caller), or a JSON PATCH of `image: null` to remove it. Never resent."""
        scopes = await self._write_scopes(SESSIONS, session_id, None)
        path = f"{SESSIONS}/{session_id}/"
        try:
            if image is None:
                response = await self._send("PATCH", path, {"image": None}, scopes)
            else:
                response = await self._send("PATCH", path, None, scopes, files=(image,))
        except UpstreamError as exc:
            if answer_lost(exc):
                raise _unknown_outcome(exc) from exc
            raise
        record = to_record(GuidebookSessionRecord, self._json(response))
        if record is None:
            raise UpstreamUnavailable(UPSTREAM, "guidebook answered an image upload without an id")
        return record

    async def _create(
        self,
        cls: type[_Created],
        collection: str,
        values: Mapping[str, Any],
        reuse_existing: bool,
    ) -> _Created:
        """POST `values`, which must carry `guide` and `import_id`.

        `reuse_existing` (an `import_id` the client chose, perhaps retrying a create whose
        outcome it never learnt): an object already holding it is returned, nothing is sent.
        When the answer is lost (timeout, dropped connection, 5xx) the object is looked up by
        `import_id` before anything is resent, and resent at most once, only after the look-up
        proved it absent and never after a timeout (that create may still land). When nothing
        can be proven, the error says so: `outcome` UNKNOWN and the `importId` to look for.
        """
        body = dict(values)
        guide, import_id = int(body["guide"]), str(body["import_id"])
        if reuse_existing:
            existing = await self._find(cls, collection, guide, import_id)
            if existing is not None:
                logger.info(
                    "create of an existing import_id; nothing sent", extra={"id": existing.id}
                )
                return existing
        scopes = await self._write_scopes(collection, None, guide)
        for attempt in range(2):
            try:
                response = await self._send("POST", f"{collection}/", body, scopes)
            except UpstreamError as exc:
                if not answer_lost(exc):
                    raise
                try:
                    found = await self._find(cls, collection, guide, import_id)
                except (UpstreamError, NotFound) as lookup:
                    raise _unknown_outcome(exc, import_id, lookup) from exc
                if found is not None:
                    logger.info("create answer lost; found it by import_id", extra={"id": found.id})
                    return found
                if isinstance(exc, UpstreamTimeout) or attempt == 1:
                    raise _unknown_outcome(exc, import_id) from exc
                continue
            record = to_record(cls, self._json(response))
            if record is None:
                raise UpstreamUnavailable(UPSTREAM, "guidebook answered a create without an id")
            return record
        raise AssertionError("unreachable")  # pragma: no cover

    async def _update(
        self, cls: type[RecordT], collection: str, key: int, changes: Mapping[str, Any]
    ) -> RecordT:
        guide = key if collection == GUIDES else None
        scopes = await self._write_scopes(collection, key, guide)
        try:
            response = await self._send("PATCH", f"{collection}/{key}/", dict(changes), scopes)
        except UpstreamError as exc:
            # Never resent: the change may have landed, and may land later still.
            if answer_lost(exc):
                raise _unknown_outcome(exc) from exc
            raise
        record = to_record(cls, self._json(response))
        if record is None:
            raise UpstreamUnavailable(UPSTREAM, "guidebook answered an update without an id")
        return record

    async def _delete(self, collection: str, key: int) -> None:
        scopes = await self._write_scopes(collection, key, None)
        try:
            response = await self._send("DELETE", f"{collection}/{key}/", None, scopes)
        except UpstreamError as exc:
            if not answer_lost(exc):
                raise
            # Gone is what the client asked for, whoever removed it; present proves nothing
            # (the delete may still land), so it is never resent.
            try:
                gone = await self._absent(collection, key)
            except (UpstreamError, NotFound) as lookup:
                raise _unknown_outcome(exc, None, lookup) from exc
            if not gone:
                raise _unknown_outcome(exc) from exc
            logger.info("delete answer lost; the object is gone", extra={"id": key})
            return
        if response.status not in (200, 202, 204):
            self._json(response)  # raises the coded error

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        scopes: tuple[str, ...],
        files: tuple[FilePart, ...] = (),
    ) -> UpstreamResponse:
        try:
            response = await self.client.request(method, path, json=body, files=files, retry=False)
        except UpstreamQuotaSpent:
            raise  # never sent: the cached reads still hold, and may have to serve for a while
        except BaseException:
            # Whatever happened (even a lost answer), the write may have landed.
            await self.client.invalidate(scopes)
            raise
        await self.client.invalidate(scopes)
        return response

    def _lookup_policy(self) -> RetryPolicy:
        """Look-ups after a lost answer get retries of their own, timeouts included: the
        shared retry budget is likely spent by the very trouble that lost the answer."""
        return replace(
            self.client.retry,
            attempts=max(LOOKUP_RETRIES, self.client.retry.attempts),
            timeouts=True,
        )

    async def _find(
        self, cls: type[_Created], collection: str, guide: int, import_id: str
    ) -> _Created | None:
        query = f"guide={guide}&import_id={quote(import_id, safe='')}"
        # Every page: where the filter is not documented (locations), it may be ignored.
        async for record in self._scan(cls, collection, query):
            if record.import_id == import_id:
                return record
        return None

    async def sessions_by_import_id(self, guide: int) -> dict[str, GuidebookSessionRecord]:
        """Every session of a guide that has an import_id, read from the upstream itself."""
        query = f"guide={guide}&page_size={self.page_size}"
        return {
            record.import_id: record
            async for record in self._scan(GuidebookSessionRecord, SESSIONS, query)
            if record.import_id
        }

    async def _scan(
        self, cls: type[RecordT], collection: str, query: str
    ) -> AsyncIterator[RecordT]:
        # Straight to the upstream: a cached "not there" must not count.
        following: str | None = query
        for _ in range(MAX_PAGES):
            if following is None:
                return
            response = await self.client.request(
                "GET",
                f"{collection}/",
                query=following,
                retry=True,
                retry_policy=self._lookup_policy(),
            )
            payload = self._json(response)
            rows = payload.get("results")
            for row in rows if isinstance(rows, list) else ():
                record = to_record(cls, row)
                if record is not None:
                    yield record
            link = payload.get("next")
            following = urlsplit(link).query if isinstance(link, str) and link else None
        raise UpstreamUnavailable(UPSTREAM, f"guidebook /{collection}/ never ends its pages")

    async def _absent(self, collection: str, key: int) -> bool:
        response = await self.client.request(
            "GET", f"{collection}/{key}/", retry=True, retry_policy=self._lookup_policy()
        )
        if response.status == 404:
            return True
        self._json(response)  # raises the coded error of anything but a readable object
        return False


_RECORDS: dict[str, type[Any]] = {
    GUIDES: GuideRecord,
    TRACKS: ScheduleTrackRecord,
    LOCATIONS: LocationRecord,
    SESSIONS: GuidebookSessionRecord,
}


def _items_scope(collection: str) -> str:
    """Cache tag every detail read of `collection` carries, and no list: a webhook that
    cannot name the objects it changed drops them all without dropping other guides' lists."""
    return f"{collection}@items"


def _list_scope(collection: str, query: str) -> str:
    """Cache tag of a list read: the guide it lists, so writes elsewhere leave it alone."""
    for param in query.split("&"):
        name, _, value = param.partition("=")
        if name == "guide" and value:
            return f"{collection}@guide:{value}"
    return f"{collection}@all"


def new_import_id() -> str:
    return f"sessiongraph-{uuid.uuid4()}"


def answer_lost(exc: UpstreamError) -> bool:
    """Whether a write that failed with `exc` may nevertheless have been applied upstream.

    A timeout, a dropped connection or a 5xx may come after the upstream acted; an open
    circuit, a 429 or another 4xx mean the write was not applied.
    """
    if isinstance(exc, UpstreamTimeout):
        return True
    if not isinstance(exc, UpstreamUnavailable) or exc.extra.get("reason") == "CIRCUIT_OPEN":
        return False
    return exc.status is None or exc.status >= 500


def _unknown_outcome(
    exc: UpstreamError, import_id: str | None = None, lookup: Exception | None = None
) -> UpstreamError:
    """The original error, saying that the write may or may not have happened.

    `extensions.outcome` is UNKNOWN; a create also carries the `importId` to look for
    before trying again, so that a retry never creates the object twice.
    """
    message = f"{exc.message}; the answer was lost, so whether the change happened is unknown"
    if lookup is not None:
        message += " (checking failed too)"
    if import_id is not None:
        message += f": look for importId {import_id!r} before trying again"
    # Same class and fields (upstream, status, reason...), whatever its constructor takes.
    error = type(exc).__new__(type(exc))
    error.__dict__.update(exc.__dict__)
    error.message = message
    error.args = (message,)
    error.extra = {**exc.extra, "outcome": "UNKNOWN"}
    if import_id is not None:
        error.extra["importId"] = import_id
    return error


@dataclass(frozen=True)
class WebhookChange:
    """What one Guidebook webhook says changed: its ids (None when absent or unusable), the
    cache tags it makes stale (none for an event that changes nothing cached) and notes
    on the ids it could not use."""

    event: str
    guide_id: int | None
    session_id: int | None
    tags: tuple[str, ...]
    notes: tuple[str, ...] = ()


def webhook_id(value: Any) -> int | None:
    """An id as webhooks send them, a string of digits (`"61737"`), or an integer."""
    if type(value) is int:
        return value if value > 0 else None
    if type(value) is str and 0 < len(value) <= 20 and value.isascii() and value.isdigit():
        return int(value) or None
    return None


def webhook_change(event: str, properties: Mapping[str, Any]) -> WebhookChange:
    """The change a webhook reports. An id it needs but cannot use widens the drop (every
    guide's, or every session of the guide) instead of dropping nothing."""
    guide, session = properties.get("guide_id"), properties.get("session_id")
    guide_id, session_id = webhook_id(guide), webhook_id(session)
    if event not in WEBHOOK_EVENTS:
        return WebhookChange(event, guide_id, session_id, ())
    notes = [_id_note("guide_id", guide)] if guide_id is None else []
    if event in (SESSION_UPDATED, SESSION_DELETED) and session_id is None:
        notes.append(_id_note("session_id", session))
    tags = _webhook_tags(event, guide_id, session_id)
    return WebhookChange(event, guide_id, session_id, tags, tuple(notes))


def webhook_tags(event: str, properties: Mapping[str, Any]) -> tuple[str, ...]:
    """The cache tags a webhook's event makes stale; () for events that change nothing cached."""
    return webhook_change(event, properties).tags


def _webhook_tags(event: str, guide: int | None, session: int | None) -> tuple[str, ...]:
    every_session = _items_scope(SESSIONS)
    if event == SESSION_CREATED:
        return _guide_scoped(SESSIONS, guide)
    if event in (SESSION_UPDATED, SESSION_DELETED):
        item = f"{SESSIONS}:{session}" if session is not None else every_session
        return _guide_scoped(SESSIONS, guide, item)
    if event == ALL_SESSIONS_DELETED:
        # Session details carry no guide tag (their guide is known only once read).
        return _guide_scoped(SESSIONS, guide, every_session)
    if event == SCHEDULE_CSV_IMPORT:
        # An import creates and updates sessions, and creates the tracks and locations
        # its rows name.
        return (
            *_guide_scoped(SESSIONS, guide, every_session),
            *_guide_scoped(TRACKS, guide),
            *_guide_scoped(LOCATIONS, guide),
        )
    if guide is None:
        return (GUIDES,)
    return (f"{GUIDES}:{guide}", f"{GUIDES}@all")  # published or cloned


def _guide_scoped(collection: str, guide: int | None, *items: str) -> tuple[str, ...]:
    """The guide's lists of `collection` and `items`; without a guide, all of the collection."""
    if guide is None:
        return (collection,)
    return (f"{collection}@guide:{guide}", *items)


def _id_note(name: str, value: Any) -> str:
    if value is None:
        return f"`{name}` is missing, so more cached reads were dropped"
    return (
        f"`{name}` is not an id (a string of digits or an integer), so it was ignored "
        "and more cached reads were dropped"
    )
