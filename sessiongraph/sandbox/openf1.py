"""Emulator of api.openf1.org: the open-source query server's filter semantics plus production's
404s, 422s, live-session gate and proxy errors, serving the stored rows under `data/openf1/` and
synthetic `car_data` and `location` rows made from the stored laps (`openf1_telemetry`).

Besides the API and the shared control plane (`_control`), it serves:
- `POST /__sandbox/openf1/live {"active": bool}`: the live-session gate by hand;
- `POST /__sandbox/openf1/rows {"collection", "rows"}`: synthetic meetings and sessions;
- `POST /__sandbox/replay {"session_key", "speed", "from_seconds"}`, `GET`, `DELETE`: a live
  replay of one recorded session (`openf1_replay` says what appears when);
- `GET|POST /__sandbox/replay/broker {"running": bool}`: the MQTT broker beside it
  (`mqtt_broker`), which the sandbox runner starts with the emulator (`mqtt_service`).
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import itertools
import operator
import re
import secrets
import threading
import traceback
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from dateutil.parser import parse as parse_date

from . import openf1_telemetry as telemetry
from ._control import CONTROL_PREFIX, SandboxControl
from ._spec import EmulatorSpec, Service
from .mqtt_broker import OpenF1Broker
from .openf1_replay import NEVER, Replay, ReplayRequest, Timeline, Version, build_timeline

__all__ = [
    "CONTROL_KEY",
    "SPEC",
    "STATE_KEY",
    "OpenF1State",
    "account_env",
    "create_app",
    "mqtt_service",
    "start_replay",
]

DATA_DIR: Final = Path(__file__).resolve().parent / "data" / "openf1"
# Mongo stores these as BSON dates; everything else is compared as the JSON value it is.
DATE_FIELDS: Final = frozenset({"date_start", "date_end", "date"})
SORT_FIELDS: Final = ("date_start", "meeting_key", "session_key", "position_current")
# The server checks these before lower-casing, so `GMT_OFFSET=…` does get cast.
UNCAST_FIELDS: Final = frozenset({"gmt_offset", "team_colour"})
OPERATORS: Final = (">=", "<=", "=", ">", "<")
LOWER_OPS: Final = frozenset({">", ">="})
UPPER_OPS: Final = frozenset({"<", "<="})
TOKEN_SECONDS: Final = 3600
NO_RESULTS: Final = {"detail": "No results found."}
# Sandbox rule for production's "422 for very large requests": telemetry needs one session and
# one driver (a `date` window is recommended, not required).
TOO_LARGE: Final = {
    "detail": (
        "Request too large: filter {collection} by session_key (a number or latest) and "
        "driver_number, each a single exact value, and preferably a date window "
        "(date>=...&date<...)."
    )
}
TELEMETRY_BLOCKS: Final = 40
LIVE_DETAIL: Final = (
    "Session in progress, access is restricted to authenticated users. "
    "Sign up here: https://openf1.org/auth.html"
)
_TZ_TAIL: Final = re.compile(r" \d{2}:\d{2}$")
_PATH: Final = re.compile(r"^v1/(\w+)$")
_TELEMETRY_PATH: Final = re.compile(r"^v1/(car_data|location)$", re.IGNORECASE)
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
# Mongo only compares values of one BSON type bracket; 0 means "never matches a query value".
_KINDS: Final[dict[type, int]] = {bool: 1, int: 2, float: 2, str: 3, datetime: 4}
# Mongo's ascending sort order across types: null (and missing) < numbers < strings < bools < dates.
_SORT_RANKS: Final[dict[type, int]] = {int: 1, float: 1, str: 2, bool: 3, datetime: 4}
_MISSING: Final = object()

Scalar = bool | int | float | str | datetime
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Stored data


def _stored_value(key: str, value: Any) -> Any:
    if key in DATE_FIELDS and isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def _sort_key(values: dict[str, Any]) -> tuple[tuple[int, Any], ...]:
    key = []
    for name in SORT_FIELDS:
        value = values.get(name)
        rank = _SORT_RANKS.get(type(value), 0)
        key.append((rank, value if rank else 0))
    return tuple(key)


class Rows(Protocol):
    """What the filter engine needs of a collection: positions 0..len-1 in response order."""

    def __len__(self) -> int: ...

    def column(self, name: str) -> list[Any]: ...

    def index(self, name: str) -> dict[tuple[int, Any], list[int]]: ...

    def record(self, position: int) -> dict[str, Any]: ...

    def encode(self, positions: list[int]) -> bytes: ...


class Collection:
    """One endpoint's rows in response order, with comparable values and pre-encoded JSON."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        parsed = [{k: _stored_value(k, v) for k, v in row.items()} for row in rows]
        order = sorted(range(len(rows)), key=lambda i: _sort_key(parsed[i]))
        # Where each row came from in `rows`.
        self.order = order
        self.rows = [rows[i] for i in order]
        self.values = [parsed[i] for i in order]
        self.bodies = [orjson.dumps(row) for row in self.rows]
        self._indexes: dict[str, dict[tuple[int, Any], list[int]]] = {}
        self._columns: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def record(self, position: int) -> dict[str, Any]:
        return self.values[position]

    def encode(self, positions: list[int]) -> bytes:
        return b"[" + b",".join([self.bodies[i] for i in positions]) + b"]"

    def column(self, name: str) -> list[Any]:
        """Field `name` of every row (a sentinel where absent), built on demand."""
        found = self._columns.get(name)
        if found is None:
            found = self._columns[name] = [values.get(name, _MISSING) for values in self.values]
        return found

    def index(self, name: str) -> dict[tuple[int, Any], list[int]]:
        """Positions by (kind, value) of field `name`, array elements included, built on demand."""
        found = self._indexes.get(name)
        if found is None:
            found = self._indexes[name] = _build_index(self.column(name))
        return found


def _build_index(column: list[Any]) -> dict[tuple[int, Any], list[int]]:
    found: dict[tuple[int, Any], list[int]] = {}
    for position, value in enumerate(column):
        for element in value if isinstance(value, list) else (value,):
            kind = _KINDS.get(type(element), 0)
            if kind:
                bucket = found.setdefault((kind, element), [])
                if not bucket or bucket[-1] != position:
                    bucket.append(position)
    return found


class TelemetryBlock:
    """One (collection, session, driver) of synthetic samples: columns, and all rows encoded once
    into one buffer, so a contiguous selection (a date window) is a single slice."""

    def __init__(self, trace: telemetry.Trace) -> None:
        self.trace = trace
        self.buffer, self.offsets = trace.encode()
        self._columns: dict[str, list[Any]] = {}
        self._indexes: dict[str, dict[tuple[int, Any], list[int]]] = {}

    def __len__(self) -> int:
        return len(self.trace)

    def column(self, name: str) -> list[Any]:
        found = self._columns.get(name)
        if found is None:
            trace, count = self.trace, len(self.trace)
            if name == "date":
                found = trace.dates()
            elif name == "meeting_key":
                found = [trace.meeting_key] * count
            elif name == "session_key":
                found = [trace.session_key] * count
            elif name == "driver_number":
                found = [trace.driver_number] * count
            elif name in trace.columns:
                found = list(trace.columns[name])
            else:
                found = [_MISSING] * count
            self._columns[name] = found
        return found

    def index(self, name: str) -> dict[tuple[int, Any], list[int]]:
        found = self._indexes.get(name)
        if found is None:
            found = self._indexes[name] = _build_index(self.column(name))
        return found

    def record(self, position: int) -> dict[str, Any]:
        return self.trace.record(position)

    def until(self, positions: list[int], now: float) -> list[int]:
        """The positions (ascending) of samples dated at or before `now` (POSIX seconds)."""
        cut = bisect_right(self.trace.dates_ms, now * 1000)
        return positions[: bisect_left(positions, cut)]

    def encode(self, positions: list[int]) -> bytes:
        if not positions:
            return b"[]"
        first, last, offsets = positions[0], positions[-1], self.offsets
        if last - first + 1 == len(positions):
            return b"[" + self.buffer[offsets[first] : offsets[last + 1] - 1] + b"]"
        view = memoryview(self.buffer)
        parts = [view[offsets[i] : offsets[i + 1] - 1] for i in positions]
        return b"[" + b",".join(parts) + b"]"


class TelemetryCache:
    """Synthetic blocks made on first request from the dataset's laps, least recently used
    dropped beyond `capacity`."""

    def __init__(self, capacity: int = TELEMETRY_BLOCKS) -> None:
        self.capacity = capacity
        self._blocks: OrderedDict[tuple[str, int, int], TelemetryBlock] = OrderedDict()
        self._laps_of: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
        self._laps_from: Collection | None = None
        # Requests are answered in worker threads; one block is made at a time.
        self._lock = threading.Lock()

    def block(
        self, laps: Collection | None, collection: str, session_key: int, driver_number: int
    ) -> TelemetryBlock | None:
        with self._lock:
            return self._block(laps, collection, session_key, driver_number)

    def _block(
        self, laps: Collection | None, collection: str, session_key: int, driver_number: int
    ) -> TelemetryBlock | None:
        if laps is not self._laps_from:
            self._laps_from, self._blocks, self._laps_of = laps, OrderedDict(), {}
            for values in laps.values if laps else []:
                owner = (values.get("session_key"), values.get("driver_number"))
                self._laps_of.setdefault(owner, []).append(values)
        key = (collection, session_key, driver_number)
        found = self._blocks.get(key)
        if found is not None:
            self._blocks.move_to_end(key)
            return found
        rows = self._laps_of.get((session_key, driver_number))
        if not rows:
            return None
        meeting_key = rows[0].get("meeting_key")
        trace = telemetry.generate(
            collection,
            rows,
            meeting_key=meeting_key if isinstance(meeting_key, int) else 0,
            session_key=session_key,
            driver_number=driver_number,
        )
        if trace is None or not len(trace):
            return None  # cheap to find again, so it takes no place in the cache
        found = self._blocks[key] = TelemetryBlock(trace)
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
        return found


@dataclass(frozen=True)
class Dataset:
    collections: dict[str, Collection]
    # Non-cancelled sessions by start, for `latest`.
    session_starts: list[datetime]
    session_keys: list[tuple[Any, Any]]


@cache
def load_dataset(directory: Path = DATA_DIR) -> Dataset:
    collections: dict[str, Collection] = {}
    for path in sorted(directory.glob("*.json")):
        # Other-era samples kept next to the data for reference, not served.
        if path.stem.endswith("_api2026"):
            continue
        collections[path.stem] = Collection(orjson.loads(path.read_bytes()))
    return build_dataset(collections)


def build_dataset(collections: dict[str, Collection]) -> Dataset:
    sessions = collections.get("sessions")
    live = sorted(
        (
            values
            for values in (sessions.values if sessions else [])
            if isinstance(values.get("date_start"), datetime)
            and values.get("is_cancelled") is not True
        ),
        key=lambda values: values["date_start"],
    )
    return Dataset(
        collections=collections,
        session_starts=[values["date_start"] for values in live],
        session_keys=[(values.get("session_key"), values.get("meeting_key")) for values in live],
    )


class ReplayView:
    """One collection during a replay: the other sessions' rows as stored, plus every version of
    the replayed session's rows with when it appears and which row (`_key`) it is a version of.

    Filters run over all of them; `visible` then drops the versions the clock has not reached
    and keeps the newest of each row, as OpenF1 groups its versions by `_key`."""

    def __init__(self, base: Collection | None, session_key: int, versions: list[Version]) -> None:
        others = (
            [
                row
                for row, values in zip(base.rows, base.values, strict=True)
                if values.get("session_key") != session_key
            ]
            if base
            else []
        )
        self.collection = Collection(others + [version.record for version in versions])
        at = [NEVER] * len(others) + [version.at for version in versions]
        seq = [-1] * len(others) + [version.seq for version in versions]
        keys: list[str | None] = [None] * len(others)
        keys += [version.key for version in versions]
        order = self.collection.order
        self.at = [at[i] for i in order]
        self.seq = [seq[i] for i in order]
        self.keys = [keys[i] for i in order]

    def visible(self, positions: list[int], now: float) -> list[int]:
        at, keys, seq = self.at, self.keys, self.seq
        kept: list[int] = []
        newest: dict[str, int] = {}
        for position in positions:
            if at[position] > now:
                continue
            key = keys[position]
            if key is None:
                kept.append(position)
                continue
            found = newest.get(key)
            if found is None or seq[position] > seq[found]:
                newest[key] = position
        if newest:
            kept.extend(newest.values())
            kept.sort()
        return kept


# ---------------------------------------------------------------------------------------------
# Query parsing, as query_params.py and type_casting.py do it


@lru_cache(maxsize=2048)
def cast(text: str) -> Scalar:
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed: datetime = parse_date(text)
    except Exception:
        return text
    if parsed.tzinfo is None or parsed.tzinfo.utcoffset(parsed) is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@lru_cache(maxsize=2048)
def has_time_info(text: str) -> bool:
    """Whether `text` names a time of day: parsing with two default hours gives the same hour."""
    early: datetime = parse_date(text, default=datetime(1, 1, 1, 5, 0))
    late: datetime = parse_date(text, default=datetime(1, 1, 1, 10, 0))
    return early.hour == late.hour


@dataclass(frozen=True)
class Param:
    name: str
    op: str
    value: Scalar
    kind: int = field(init=False, compare=False)
    compare: Callable[[Any, Any], bool] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        value = self.value
        if isinstance(value, datetime):
            # BSON dates hold milliseconds; pymongo floors the rest away.
            value = value.replace(microsecond=value.microsecond // 1000 * 1000)
            object.__setattr__(self, "value", value)
        object.__setattr__(self, "kind", _KINDS[type(value)])
        object.__setattr__(self, "compare", _COMPARE[self.op])

    def test(self, stored: Any) -> bool:
        """Mongo semantics: same type bracket only, and an array matches if any element does."""
        kind = _KINDS.get(type(stored), 0)
        if kind == self.kind:
            return self.compare(stored, self.value)
        if type(stored) is list:
            return any(self.test(element) for element in stored)
        return False


def _widen_day(name: str, op: str, day: datetime) -> list[Param]:
    following = day + timedelta(days=1)
    if op == ">":
        return [Param(name, ">=", following)]
    if op == "<":
        return [Param(name, "<", day)]
    widened = []
    if op in ("=", ">="):
        widened.append(Param(name, ">=", day))
    if op in ("=", "<="):
        widened.append(Param(name, "<", following))
    return widened


def _filter_params(text: str) -> list[Param]:
    for op in OPERATORS:
        if op in text:
            raw_field, _, raw_value = text.partition(op)
            value = raw_value if raw_field in UNCAST_FIELDS else cast(raw_value)
            name = raw_field.lower()
            if isinstance(value, datetime) and not has_time_info(raw_value):
                return _widen_day(name, op, value)
            return [Param(name, op, value)]
    raise ValueError(f"No valid operator found in `{text}`.")


def parse_filters(pairs: Iterable[tuple[str, str]]) -> list[Param]:
    params: list[Param] = []
    for key, value in pairs:
        text = f"{key}={value}" if value else key
        # An unescaped `+02:00` arrived as a space; the server repairs only this one shape.
        if "date" in text and _TZ_TAIL.search(text):
            text = text.replace(" ", "+", 1)
        params.extend(_filter_params(text))
    return params


# ---------------------------------------------------------------------------------------------
# Matching, as db._generate_query_predicate builds it


def _bound(param: Param) -> Any:
    return param.value


def _pair_bounds(params: list[Param]) -> list[tuple[Param, Param]]:
    """Greedy interval pairing; mixed value types raise TypeError, a 500 as upstream."""
    lowers = sorted((p for p in params if p.op in LOWER_OPS), key=_bound, reverse=True)
    uppers = sorted((p for p in params if p.op in UPPER_OPS), key=_bound, reverse=True)
    pairs = []
    while lowers and uppers:
        lower = lowers.pop()
        for i in reversed(range(len(uppers))):
            if _bound(lower) <= _bound(uppers[i]):
                pairs.append((lower, uppers.pop(i)))
                break
        else:
            break
    return pairs


@dataclass
class FieldFilter:
    """One field's predicates: equalities, lone bounds and bound pairs, any of which may match."""

    name: str
    equals: list[Param]
    singles: list[Param]
    pairs: list[tuple[Param, Param]]

    @classmethod
    def build(cls, name: str, params: list[Param]) -> FieldFilter:
        unique: list[Param] = []
        seen: set[tuple[str, type, Scalar]] = set()
        for param in params:
            identity = (param.op, type(param.value), param.value)
            if identity not in seen:
                seen.add(identity)
                unique.append(param)
        pairs = _pair_bounds(unique)
        paired = [param for pair in pairs for param in pair]
        equals = [p for p in unique if p.op == "="]
        singles = [p for p in unique if p.op != "=" and p not in paired]
        return cls(name, equals, singles, pairs)

    def __post_init__(self) -> None:
        self.alternatives: tuple[tuple[Param, ...], ...] = (
            *((p,) for p in self.equals),
            *((p,) for p in self.singles),
            *self.pairs,
        )

    def matches(self, stored: Any) -> bool:
        # Plain loops: this runs for every candidate row of every request.
        for alternative in self.alternatives:
            for param in alternative:
                if not param.test(stored):
                    break
            else:
                return True
        return False

    def candidates(self, collection: Rows) -> list[int] | None:
        """Positions that can match, from the index, when this field is equalities only."""
        if self.singles or self.pairs:
            return None
        index = collection.index(self.name)
        found: set[int] = set()
        for param in self.equals:
            found.update(index.get((param.kind, param.value), ()))
        return sorted(found)


def select(collection: Rows, filters: list[FieldFilter]) -> list[int]:
    """Positions of the rows every filter accepts, in response order."""
    narrowest: list[int] | None = None
    for field_filter in filters:
        found = field_filter.candidates(collection)
        if found is not None and (narrowest is None or len(found) < len(narrowest)):
            narrowest = found
    positions = list(range(len(collection))) if narrowest is None else narrowest
    for field_filter in filters:
        if not positions:
            break
        column, matches = collection.column(field_filter.name), field_filter.matches
        positions = [i for i in positions if matches(column[i])]
    return positions


# ---------------------------------------------------------------------------------------------
# Responses


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error_page(trace: str) -> web.Response:
    # The open-source server answers every failure with its traceback in a bare HTML page.
    body = (
        "<html><head><title>Internal Server Error</title></head><body>"
        f"<h1>An error occurred</h1><pre>{html.escape(trace)}</pre></body></html>"
    )
    return web.Response(text=body, status=500, content_type="text/html")


def _csv_response(collection: Rows, positions: list[int], filename: str) -> web.Response:
    if not positions:
        raise ValueError("No results")
    rows = [collection.record(i) for i in positions]
    names: set[str] = set().union(*rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=sorted(names))
    writer.writeheader()
    writer.writerows(rows)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f"attachment; filename={filename}"},
    )


def fault_response(status: int, retry_after: float | None) -> web.StreamResponse:
    """What production and its front proxy send for an injected fault of `status`."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status == 401:
        return _json({"detail": LIVE_DETAIL}, status)
    if status == 404:
        return _json(NO_RESULTS, status)
    if status == 422:
        return _json({"detail": "Request too large"}, status)
    if status == 429:
        headers = {} if retry_after is None else {"Retry-After": format(retry_after, "g")}
        return web.Response(text="Rate exceeded", status=429, headers=headers)
    if status >= 500:
        title = f"{status} {phrase}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
        )
        return web.Response(text=page, status=status, content_type="text/html")
    return _json({"detail": phrase}, status)


# ---------------------------------------------------------------------------------------------
# The application


@dataclass
class OpenF1State:
    """Mutable state beside the shared dataset: clock, credentials, tokens and the live gate."""

    dataset: Dataset
    clock: Clock
    username: str
    password: str
    live: bool = False
    tokens: dict[str, datetime] = field(default_factory=dict)
    telemetry: TelemetryCache = field(default_factory=TelemetryCache)
    # The MQTT broker beside the emulator, when one runs (see `mqtt_service`).
    broker: OpenF1Broker | None = None
    # The replay running, and the collections it serves through its clock.
    replaying: tuple[Replay, dict[str, ReplayView]] | None = None
    # One `_id` counter for every message this emulator publishes, across replays.
    message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _prepared: OrderedDict[int, tuple[Dataset, Timeline, dict[str, ReplayView]]] = field(
        default_factory=OrderedDict
    )
    _replay_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def replay(self) -> Replay | None:
        return self.replaying[0] if self.replaying else None

    def gated(self) -> bool:
        """Whether anonymous clients get the live-session 401: by hand, or in a replay's window."""
        replay = self.replay
        return self.live or (replay is not None and replay.in_live_window())

    def latest(self) -> tuple[Any, Any]:
        """(session_key, meeting_key) of the last non-cancelled session started by now + 60 s,
        or of the session a replay plays."""
        replay = self.replay
        if replay is not None:
            return replay.session_key, replay.timeline.meeting_key
        horizon = self.clock() + timedelta(seconds=60)
        position = bisect_right(self.dataset.session_starts, horizon)
        if position == 0:
            raise LookupError("Could not find any session")
        return self.dataset.session_keys[position - 1]

    def authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.valid_token(token.strip())

    def valid_token(self, token: str | None) -> bool:
        expiry = self.tokens.get(token) if token else None
        return expiry is not None and self.clock() < expiry

    def mqtt_account(self, username: str | None, password: str | None) -> str | None:
        """The broker's gate: any username, a valid token as password; the account it is of."""
        del username  # OpenF1 accepts any
        return self.username if self.valid_token(password) else None

    # --- replay ---

    def sessions_by_key(self) -> dict[int, dict[str, Any]]:
        sessions = self.dataset.collections.get("sessions")
        return {
            values["session_key"]: values
            for values in (sessions.values if sessions else [])
            if type(values.get("session_key")) is int
        }

    async def start_replay(self, request: ReplayRequest) -> Replay:
        """Ends any replay and starts `request`'s; its clock starts once its rows are ready."""
        async with self._replay_lock:
            timeline, views = await asyncio.to_thread(self._prepare, request.session_key)
            self.end_replay()
            replay = Replay(
                timeline,
                request.speed,
                request.from_seconds,
                publish=self._publish,
                next_id=lambda: next(self.message_ids),
            )
            self.replaying = (replay, views)
            replay.start()
            return replay

    def end_replay(self) -> None:
        replaying, self.replaying = self.replaying, None
        if replaying is not None:
            replaying[0].stop()

    def replay_status(self) -> dict[str, Any]:
        replay = self.replay
        status: dict[str, Any]
        if replay is None:
            status = dict.fromkeys(
                (
                    "session_key",
                    "meeting_key",
                    "speed",
                    "from_seconds",
                    "clock",
                    "live",
                    "finished",
                    "published",
                    "dropped",
                )
            )
        else:
            status = replay.status()
        status["broker"] = self.broker_status()
        return status

    def broker_status(self) -> dict[str, Any]:
        if self.broker is None:
            return {
                "running": False,
                "url": None,
                "ws_url": None,
                "connections": 0,
                "max_connections_per_user": None,
                "refused": 0,
            }
        return self.broker.status()

    def _prepare(self, session_key: int) -> tuple[Timeline, dict[str, ReplayView]]:
        """The timeline and views of a session, kept for the few sessions replayed last."""
        found = self._prepared.get(session_key)
        if found is not None and found[0] is self.dataset:
            self._prepared.move_to_end(session_key)
            return found[1], found[2]
        dataset = self.dataset
        session = self.sessions_by_key()[session_key]
        collections = {
            name: collection
            for name, collection in dataset.collections.items()
            if name not in telemetry.COLLECTIONS
        }
        timeline = build_timeline(collections, session)
        views = {
            name: ReplayView(collections.get(name), session_key, versions)
            for name, versions in timeline.versions.items()
        }
        self._prepared[session_key] = (dataset, timeline, views)
        while len(self._prepared) > 4:
            self._prepared.popitem(last=False)
        return timeline, views

    async def _publish(self, topic: str, payload: bytes) -> bool:
        broker = self.broker
        return broker is not None and await broker.publish(topic, payload)

    original: Dataset | None = None

    def end_live(self) -> None:
        self.live = False

    def restore(self) -> None:
        if self.original is not None:
            self.dataset, self.original = self.original, None

    def upsert(self, name: str, rows: list[dict[str, Any]]) -> int:
        """Synthetic rows for tests (a session that moves, is cancelled or starts now): each
        replaces the row with the same key, or is added. Undone by a reset."""
        key = _ROW_KEYS.get(name)
        if key is None:
            raise ValueError(f"rows can be set for {', '.join(_ROW_KEYS)} only")
        if not all(isinstance(r, dict) and isinstance(r.get(key), int) for r in rows):
            raise ValueError(f"each row needs an integer {key}")
        self.original = self.original or self.dataset
        current = self.dataset.collections.get(name)
        merged = {row[key]: row for row in (current.rows if current else [])}
        merged.update({row[key]: row for row in rows})
        collections = {**self.dataset.collections, name: Collection(list(merged.values()))}
        self.dataset = build_dataset(collections)
        return len(rows)

    def answer(self, path: str, raw_query: str) -> web.Response:
        replaying = self.replaying
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        if not path and not pairs:
            return web.Response(text="Welcome to OpenF1!")
        params = [self._resolve_latest(p) for p in parse_filters(pairs)]
        matched = _PATH.match(path.lower())
        if matched is None:
            raise ValueError("Invalid route")
        name = matched.group(1)
        by_field: dict[str, list[Param]] = {}
        for param in params:
            by_field.setdefault(param.name, []).append(param)
        use_csv = "csv" in by_field and bool(by_field.pop("csv")[0].value)
        collection: Rows
        view: ReplayView | None = None
        block: TelemetryBlock | None = None
        if name in telemetry.COLLECTIONS:
            found = self._telemetry_block(name, by_field)
            if isinstance(found, web.Response):
                return found
            block = found
            collection = block or Collection([])
        elif replaying is not None and name in replaying[1]:
            view = replaying[1][name]
            collection = view.collection
        else:
            collection = self.dataset.collections.get(name) or Collection([])
        filters = [FieldFilter.build(key, group) for key, group in by_field.items()]
        positions = select(collection, filters)
        if replaying is not None:
            replay = replaying[0]
            if view is not None:
                positions = view.visible(positions, replay.now())
            elif block is not None and block.trace.session_key == replay.session_key:
                positions = block.until(positions, replay.now())
        if use_csv:
            return _csv_response(collection, positions, f"{name}.csv")
        if not positions:
            return _json(NO_RESULTS, 404)
        return web.Response(body=collection.encode(positions), content_type="application/json")

    def _telemetry_block(
        self, name: str, by_field: dict[str, list[Param]]
    ) -> TelemetryBlock | web.Response | None:
        """The block one exact session_key and driver_number pick (their filters are then
        satisfied by every row and dropped from `by_field`), None for no data, or the 422."""
        session_key = _exact_value(by_field.get("session_key"))
        driver_number = _exact_value(by_field.get("driver_number"))
        if session_key is None or driver_number is None:
            detail = TOO_LARGE["detail"].format(collection=f"/v1/{name}")
            return _json({"detail": detail}, 422)
        if type(session_key) is not int or type(driver_number) is not int:
            return None  # a string, bool or fraction equals no stored key
        block = self.telemetry.block(
            self.dataset.collections.get("laps"), name, session_key, driver_number
        )
        if block is not None:
            del by_field["session_key"], by_field["driver_number"]
        return block

    def _resolve_latest(self, param: Param) -> Param:
        if param.value != "latest" or param.name not in ("session_key", "meeting_key"):
            return param
        session_key, meeting_key = self.latest()
        key = session_key if param.name == "session_key" else meeting_key
        return Param(param.name, param.op, key)


def _exact_value(params: list[Param] | None) -> Scalar | None:
    """The one value a field's filters are all equal to; an integral float as an int (Mongo
    matches 1.0 to 1). None when absent, ranged or several values."""
    if not params or any(p.op != "=" for p in params):
        return None
    values = {(p.kind, p.value) for p in params}
    if len(values) != 1:
        return None
    value = params[0].value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_ROW_KEYS = {"meetings": "meeting_key", "sessions": "session_key"}
STATE_KEY: Final = web.AppKey("openf1_state", OpenF1State)
CONTROL_KEY: Final = web.AppKey("openf1_control", SandboxControl)


async def _api(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if state.gated() and not state.authorized(request):
        return _json({"detail": LIVE_DETAIL}, 401)
    path, query = request.match_info["path"], request.rel_url.raw_query_string
    try:
        if _TELEMETRY_PATH.match(path):
            # A new block takes a tenth of a second or so: keep the loop the emulators share free.
            return await asyncio.to_thread(state.answer, path, query)
        return state.answer(path, query)
    except Exception:
        return _error_page(traceback.format_exc())


async def _token(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    form = await request.post()
    username, password = form.get("username"), form.get("password")
    if not (
        isinstance(username, str)
        and isinstance(password, str)
        and secrets.compare_digest(username.encode(), state.username.encode())
        and secrets.compare_digest(password.encode(), state.password.encode())
    ):
        return _json({"detail": "Invalid username or password"}, 401)
    token = secrets.token_urlsafe(32)
    state.tokens[token] = state.clock() + timedelta(seconds=TOKEN_SECONDS)
    return _json({"access_token": token, "token_type": "bearer", "expires_in": str(TOKEN_SECONDS)})


async def _set_live(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        payload = await request.json()
    except ValueError:
        payload = None
    active = payload.get("active") if isinstance(payload, dict) else None
    if not isinstance(active, bool):
        return _json({"error": 'expected JSON {"active": true|false}'}, 400)
    state.live = active
    return _json({"active": state.live})


async def _set_rows(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        payload = await request.json()
        name, rows = payload["collection"], payload["rows"]
        count = state.upsert(name, rows)
    except (ValueError, KeyError, TypeError) as exc:
        return _json({"error": f'expected {{"collection": ..., "rows": [...]}}: {exc}'}, 400)
    return _json({"upserted": count})


async def _get_live(request: web.Request) -> web.Response:
    return _json({"active": request.app[STATE_KEY].live})


async def _get_replay(request: web.Request) -> web.Response:
    return _json(request.app[STATE_KEY].replay_status())


async def _post_replay(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        payload = await request.json()
    except ValueError:
        return _json({"error": "the body must be JSON"}, 400)
    try:
        replay = ReplayRequest.from_json(payload, state.sessions_by_key())
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    await state.start_replay(replay)
    return _json(state.replay_status())


async def _delete_replay(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.end_replay()
    return _json(state.replay_status())


async def _get_broker(request: web.Request) -> web.Response:
    return _json(request.app[STATE_KEY].broker_status())


async def _set_broker(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        payload = await request.json()
    except ValueError:
        payload = None
    running = payload.get("running") if isinstance(payload, dict) else None
    if not isinstance(running, bool) or set(payload) != {"running"}:
        return _json({"error": 'expected JSON {"running": true|false}'}, 400)
    broker = state.broker
    if broker is None:
        return _json({"error": "no MQTT broker runs beside this emulator"}, 409)
    try:
        await (broker.start() if running else broker.stop())
    except Exception as exc:  # e.g. its port was taken while it was down
        return _json({"error": f"the broker did not {'start' if running else 'stop'}: {exc}"}, 500)
    return _json(state.broker_status())


@web.middleware
async def _restart_broker_on_reset(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    """`POST /__sandbox/reset` also brings a stopped broker back (the replay ends by a hook)."""
    response: web.StreamResponse = await handler(request)
    if request.method == "POST" and request.path == CONTROL_PREFIX + "reset":
        broker = request.app[STATE_KEY].broker
        if broker is not None and not broker.running:
            await broker.start()
    return response


async def _end_replay_on_cleanup(app: web.Application) -> None:
    app[STATE_KEY].end_replay()


def create_app(
    *,
    username: str = "sandbox",
    # Loopback-only test credentials, not a secret.
    password: str = "sandbox",  # noqa: S107
    clock: Clock = _utc_now,
    data_dir: Path = DATA_DIR,
) -> web.Application:
    """Build the emulator; `clock` must return an aware datetime and drives `latest` and tokens."""
    app = web.Application()
    state = OpenF1State(load_dataset(data_dir), clock, username, password)
    control = SandboxControl(fault_responder=fault_response)
    control.reset_hooks.append(state.end_live)
    control.reset_hooks.append(state.end_replay)
    control.reset_hooks.append(state.restore)
    app[STATE_KEY] = state
    app[CONTROL_KEY] = control
    control.install(app)
    app.middlewares.append(_restart_broker_on_reset)
    app.on_cleanup.append(_end_replay_on_cleanup)
    app.router.add_get(CONTROL_PREFIX + "replay", _get_replay)
    app.router.add_post(CONTROL_PREFIX + "replay", _post_replay)
    app.router.add_delete(CONTROL_PREFIX + "replay", _delete_replay)
    app.router.add_get(CONTROL_PREFIX + "replay/broker", _get_broker)
    app.router.add_post(CONTROL_PREFIX + "replay/broker", _set_broker)
    app.router.add_post("/__sandbox/openf1/live", _set_live)
    app.router.add_get("/__sandbox/openf1/live", _get_live)
    app.router.add_post("/__sandbox/openf1/rows", _set_rows)
    app.router.add_post("/token", _token)
    app.router.add_route("GET", "/{path:.*}", _api)
    app.router.add_route("POST", "/{path:.*}", _api)
    return app


async def start_replay(
    app: web.Application, session_key: int, speed: float = 1.0, from_seconds: float = 0.0
) -> None:
    """Start a replay on an emulator app, as `POST /__sandbox/replay` does; ValueError says why
    it cannot."""
    state = app[STATE_KEY]
    payload = {"session_key": session_key, "speed": speed, "from_seconds": from_seconds}
    await state.start_replay(ReplayRequest.from_json(payload, state.sessions_by_key()))


def account_env(app: web.Application) -> dict[str, str]:
    """Gateway settings for the emulator's one account (what a replay's live window needs)."""
    state = app[STATE_KEY]
    return {"OPENF1_USERNAME": state.username, "OPENF1_PASSWORD": state.password}


@asynccontextmanager
async def mqtt_service(app: web.Application, host: str) -> AsyncIterator[Service]:
    """The MQTT broker beside the emulator `app`, on free ports of `host`, while entered."""
    state = app[STATE_KEY]
    broker = OpenF1Broker(state.mqtt_account, host)
    await broker.start()
    state.broker = broker
    urls = {"openf1_mqtt": str(broker.url)}
    if broker.ws_url is not None:
        urls["openf1_mqtt_ws"] = broker.ws_url
    try:
        yield Service(urls=urls, env={"OPENF1_MQTT_URL": str(broker.url)})
    finally:
        state.end_replay()
        state.broker = None
        await broker.stop()


SPEC = EmulatorSpec(
    name="openf1",
    create_app=create_app,
    base_path="/v1",
    gateway_env=lambda root: {
        "OPENF1_URL": root + "/v1",
        "OPENF1_RATE_PER_SECOND": "0",
        "OPENF1_RATE_PER_MINUTE": "0",
    },
    companions=(mqtt_service,),
)
