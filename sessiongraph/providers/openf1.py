"""OpenF1 (api.openf1.org/v1): meetings, sessions and per-session data as typed records, with
safe query strings.

The upstream's query grammar has traps (reference `openf1.md` §2); `build_query` sends only what
it is sure the upstream reads as meant, and every result is filtered again locally.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import operator
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import msgspec
import orjson
from dateutil import parser as dateparser
from yarl import URL

from ..cache import Freshness, Policy, Stored, uncached
from ..errors import UpstreamAuthFailed, UpstreamRejected, UpstreamUnavailable
from ..filtering import Condition, FilterSpec, matches
from ._auth import TokenAuth, TokenFetcher, password_grant_fetcher
from ._http import UpstreamClient, UpstreamResponse
from ._values import typed_or_json
from .openf1_telemetry import TelemetryKind, TelemetrySeries, columns

if TYPE_CHECKING:
    from .openf1_catalogue import Catalogue

__all__ = [
    "SESSION_COLLECTIONS",
    "ChampionshipDriverRecord",
    "ChampionshipTeamRecord",
    "DriverRecord",
    "F1LapRecord",
    "F1SessionRecord",
    "GridPositionRecord",
    "IntervalRecord",
    "MeetingRecord",
    "OpenF1Freshness",
    "OpenF1Provider",
    "OvertakeRecord",
    "PitStopRecord",
    "PositionRecord",
    "RaceControlRecord",
    "SessionDataRecord",
    "SessionResultRecord",
    "StintRecord",
    "TeamRadioRecord",
    "WeatherRecord",
    "build_query",
    "openf1_token_fetcher",
]

logger = logging.getLogger("sessiongraph.openf1")

UPSTREAM = "openf1"
# Parsed answers kept per process, most recently used first out last.
_PARSED_ANSWERS = 256
NO_RESULTS = "No results found."
# Fields the upstream never casts (reference §2); their values always arrive as strings.
_NEVER_CAST = frozenset({"gmt_offset", "team_colour"})
# Characters the upstream's operator search would find inside a value.
_OPERATOR_CHARS = frozenset("<>=")


def parse_instant(value: Any) -> datetime | None:
    """OpenF1 instants: ISO 8601, with or without microseconds, always with an offset."""
    if type(value) is not str or not value:
        return None
    return _parse_instant_text(value)


@functools.lru_cache(maxsize=8192)
def _parse_instant_text(value: str) -> datetime | None:
    # The same few thousand schedule instants arrive again with every request.
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class MeetingRecord:
    """A Grand Prix or testing weekend (reference §1.1); fields absent in older data are None."""

    meeting_key: int
    meeting_name: str | None = None
    meeting_official_name: str | None = None
    location: str | None = None
    country_key: int | None = None
    country_code: str | None = None
    country_name: str | None = None
    country_flag: str | None = None
    circuit_key: int | None = None
    circuit_short_name: str | None = None
    circuit_type: str | None = None
    circuit_info_url: str | None = None
    circuit_image: str | None = None
    gmt_offset: str | None = None
    date_start: datetime | None = None
    date_end: datetime | None = None
    year: int | None = None
    is_cancelled: bool | None = None
    meeting_code: str | None = None


@dataclass(frozen=True, slots=True)
class F1SessionRecord:
    """A practice, qualifying, sprint or race session (reference §1.2)."""

    session_key: int
    meeting_key: int
    session_type: str | None = None
    session_name: str | None = None
    date_start: datetime | None = None
    date_end: datetime | None = None
    circuit_key: int | None = None
    circuit_short_name: str | None = None
    country_key: int | None = None
    country_code: str | None = None
    country_name: str | None = None
    location: str | None = None
    gmt_offset: str | None = None
    year: int | None = None
    is_cancelled: bool | None = None


_LAPS_BEHIND = re.compile(r"\+(\d+) LAPS?")


def _laps_behind(value: Any) -> int | None:
    """N from OpenF1's "+N LAP"/"+N LAPS" gap text."""
    if type(value) is not str:
        return None
    match = _LAPS_BEHIND.fullmatch(value.strip())
    return int(match.group(1)) if match else None


def _derived(source: str, convert: Callable[[Any], Any] | None = None) -> Any:
    """A record field read from another upstream field (for values OpenF1 sends as unions)."""
    return dataclass_field(default=None, metadata={"source": source, "convert": convert})


@dataclass(frozen=True, slots=True)
class DriverRecord:
    """One driver in one session (reference §4 drivers)."""

    session_key: int
    meeting_key: int
    driver_number: int
    broadcast_name: str | None = None
    full_name: str | None = None
    name_acronym: str | None = None
    team_name: str | None = None
    team_colour: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    headshot_url: str | None = None
    country_code: str | None = None


@dataclass(frozen=True, slots=True)
class SessionResultRecord:
    """A driver's classification. `duration`/`gap_to_leader` arrive as a number, a Q1-Q3
    array (qualifying) or "+N LAP(S)"; each shape lands in its own typed field."""

    session_key: int
    meeting_key: int
    driver_number: int
    position: int | None = None
    number_of_laps: int | None = None
    points: float | None = None
    dnf: bool | None = None
    dns: bool | None = None
    dsq: bool | None = None
    duration: float | None = None
    duration_by_phase: tuple[float | None, ...] | None = _derived("duration")
    gap_to_leader: float | None = None
    gap_to_leader_by_phase: tuple[float | None, ...] | None = _derived("gap_to_leader")
    gap_to_leader_text: str | None = _derived("gap_to_leader")
    laps_behind: int | None = _derived("gap_to_leader", _laps_behind)


@dataclass(frozen=True, slots=True)
class GridPositionRecord:
    """A starting-grid slot; keyed on the qualifying session, not the race (reference §4)."""

    session_key: int
    meeting_key: int
    driver_number: int
    position: int | None = None
    lap_duration: float | None = None


@dataclass(frozen=True, slots=True)
class StintRecord:
    session_key: int
    meeting_key: int
    driver_number: int
    stint_number: int | None = None
    lap_start: int | None = None
    lap_end: int | None = None
    compound: str | None = None
    tyre_age_at_start: int | None = None


@dataclass(frozen=True, slots=True)
class PitStopRecord:
    """A pit-lane visit; `pit_duration` is the pre-2026 name of `lane_duration`."""

    session_key: int
    meeting_key: int
    driver_number: int
    lap_number: int | None = None
    date: datetime | None = None
    lane_duration: float | None = None
    stop_duration: float | None = None
    pit_duration: float | None = None


@dataclass(frozen=True, slots=True)
class RaceControlRecord:
    """A race-control message; `driver_number` is null for messages about no one driver."""

    session_key: int
    meeting_key: int
    date: datetime | None = None
    driver_number: int | None = None
    lap_number: int | None = None
    category: str | None = None
    flag: str | None = None
    scope: str | None = None
    sector: int | None = None
    message: str | None = None
    qualifying_phase: int | None = None


@dataclass(frozen=True, slots=True)
class WeatherRecord:
    """One weather sample; OpenF1 sends one a minute."""

    session_key: int
    meeting_key: int
    date: datetime | None = None
    air_temperature: float | None = None
    track_temperature: float | None = None
    humidity: float | None = None
    pressure: float | None = None
    rainfall: int | None = None
    wind_direction: int | None = None
    wind_speed: float | None = None


@dataclass(frozen=True, slots=True)
class F1LapRecord:
    """One lap of one driver; lap 1's timings are inferred and often null (SOURCE.md)."""

    session_key: int
    meeting_key: int
    driver_number: int
    lap_number: int
    date_start: datetime | None = None
    lap_duration: float | None = None
    duration_sector_1: float | None = None
    duration_sector_2: float | None = None
    duration_sector_3: float | None = None
    i1_speed: int | None = None
    i2_speed: int | None = None
    st_speed: int | None = None
    is_pit_out_lap: bool | None = None
    segments_sector_1: tuple[int | None, ...] | None = None
    segments_sector_2: tuple[int | None, ...] | None = None
    segments_sector_3: tuple[int | None, ...] | None = None


@dataclass(frozen=True, slots=True)
class PositionRecord:
    """A driver's position, emitted on every change (reference §4 position)."""

    session_key: int
    meeting_key: int
    driver_number: int
    date: datetime | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class IntervalRecord:
    """Gaps about every 4 s in races; each is a number, "+N LAP(S)" or null (reference §4)."""

    session_key: int
    meeting_key: int
    driver_number: int
    date: datetime | None = None
    gap_to_leader: float | None = None
    gap_to_leader_text: str | None = _derived("gap_to_leader")
    laps_behind: int | None = _derived("gap_to_leader", _laps_behind)
    interval: float | None = None
    interval_text: str | None = _derived("interval")
    interval_laps_behind: int | None = _derived("interval", _laps_behind)


@dataclass(frozen=True, slots=True)
class TeamRadioRecord:
    session_key: int
    meeting_key: int
    driver_number: int
    date: datetime | None = None
    recording_url: str | None = None


@dataclass(frozen=True, slots=True)
class OvertakeRecord:
    """One pass in a race; OpenF1 says the list may be incomplete (reference §4)."""

    session_key: int
    meeting_key: int
    overtaking_driver_number: int
    overtaken_driver_number: int
    date: datetime | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class ChampionshipDriverRecord:
    """Standings around one race session (beta upstream; values may be null while live)."""

    session_key: int
    meeting_key: int
    driver_number: int
    position_start: int | None = None
    position_current: int | None = None
    points_start: float | None = None
    points_current: float | None = None


@dataclass(frozen=True, slots=True)
class ChampionshipTeamRecord:
    session_key: int
    meeting_key: int
    team_name: str
    position_start: int | None = None
    position_current: int | None = None
    points_start: float | None = None
    points_current: float | None = None


SessionDataRecord = (
    DriverRecord
    | SessionResultRecord
    | GridPositionRecord
    | StintRecord
    | PitStopRecord
    | RaceControlRecord
    | WeatherRecord
    | F1LapRecord
    | PositionRecord
    | IntervalRecord
    | TeamRadioRecord
    | OvertakeRecord
    | ChampionshipDriverRecord
    | ChampionshipTeamRecord
)
# The upstream collection each per-session record is read from.
SESSION_COLLECTIONS: dict[type[Any], str] = {
    DriverRecord: "drivers",
    SessionResultRecord: "session_result",
    GridPositionRecord: "starting_grid",
    StintRecord: "stints",
    PitStopRecord: "pit",
    RaceControlRecord: "race_control",
    WeatherRecord: "weather",
    F1LapRecord: "laps",
    PositionRecord: "position",
    IntervalRecord: "intervals",
    TeamRadioRecord: "team_radio",
    OvertakeRecord: "overtakes",
    ChampionshipDriverRecord: "championship_drivers",
    ChampionshipTeamRecord: "championship_teams",
}

RecordT = TypeVar("RecordT")

_INSTANT_FIELDS = frozenset({"date_start", "date_end", "date"})
Converter = Callable[[Any], Any]
# (record field, upstream field, converter)
Plan = tuple[tuple[str, str, Converter], ...]


def _exact(kind: type[Any]) -> Converter:
    # `type(...) is`, not isinstance: a JSON true must not pass as the int 1.
    return lambda value: value if type(value) is kind else None


def _number(value: Any) -> float | None:
    # JSON writes whole seconds as integers (the winner's gap is `0`); bools are not numbers.
    return float(value) if type(value) in (int, float) else None


def _array(item: Converter) -> Converter:
    def convert(value: Any) -> tuple[Any, ...] | None:
        return tuple(item(v) for v in value) if type(value) is list else None

    return convert


def _converter(name: str, annotation: str) -> Converter:
    if name in _INSTANT_FIELDS:
        return parse_instant
    for prefix, convert in (
        ("tuple[int", _array(_exact(int))),
        ("tuple[float", _array(_number)),
        ("int", _exact(int)),
        ("float", _number),
        ("bool", _exact(bool)),
    ):
        if annotation.startswith(prefix):
            return convert
    return _exact(str)


def _plan(cls: type[Any]) -> tuple[Plan, tuple[str, ...]]:
    """How to read each field, and the key fields (the only ones not typed `| None`)."""
    plan: list[tuple[str, str, Converter]] = []
    for f in fields(cls):
        text = str(f.type)
        convert = f.metadata.get("convert") or _converter(f.name, text)
        plan.append((f.name, f.metadata.get("source", f.name), convert))
    keys = tuple(f.name for f in fields(cls) if "None" not in str(f.type))
    return tuple(plan), keys


_PLANS: dict[type[Any], tuple[Plan, tuple[str, ...]]] = {}


def _plan_of(cls: type[Any]) -> tuple[Plan, tuple[str, ...]]:
    found = _PLANS.get(cls)
    if found is None:
        found = _PLANS[cls] = _plan(cls)
    return found


def to_record(cls: type[RecordT], row: Any) -> RecordT | None:
    """Map one JSON row to a record, tolerating missing or mistyped fields (schema drift)."""
    if not isinstance(row, dict):
        return None
    plan, key_fields = _plan_of(cls)
    values = {name: convert(row.get(source)) for name, source, convert in plan}
    if any(values[name] is None for name in key_fields):
        return None
    return cls(**values)


# JSON types a field's values take when they are what `_converter` would keep as they are.
_EXACT_TYPES: tuple[tuple[str, Any], ...] = (
    ("tuple[int", list[int | None] | None),
    ("tuple[float", list[float | None] | None),
    ("int", int | None),
    ("float", float | None),
    ("bool", bool | None),
    ("str", str | None),
)


def _as_tuple(value: list[Any] | None) -> tuple[Any, ...] | None:
    return tuple(value) if value is not None else None


class RowReader:
    """An answer's rows decoded straight into one struct per row (msgspec): a field whose
    values arrive as the record wants them is typed, so msgspec checks it; the rest (instants,
    unions, fields read twice) arrive as JSON and go through their converter. An answer with
    any value of another type does not fit the struct: it is decoded as plain JSON, and
    `to_record` reads it row by row, so both paths give the same records."""

    def __init__(self, cls: type[Any]) -> None:
        plan, key_fields = _plan_of(cls)
        sources = list(dict.fromkeys(source for _, source, _ in plan))
        read_by = {source: [n for n, s, _ in plan if s == source] for source in sources}
        declared = {f.name: f for f in fields(cls)}
        kinds: dict[str, Any] = {}
        self._post: list[tuple[int, Converter]] = []
        for index, (name, source, convert) in enumerate(plan):
            text = str(declared[name].type)
            exact = next((t for prefix, t in _EXACT_TYPES if text.startswith(prefix)), None)
            plain = (
                len(read_by[source]) == 1
                and "convert" not in declared[name].metadata
                and name not in _INSTANT_FIELDS
                and exact is not None
            )
            kinds[source] = exact if plain else Any
            if not plain:
                self._post.append((index, convert))
            elif text.startswith("tuple["):
                self._post.append((index, _as_tuple))
        # Struct fields f0, f1, … named after the upstream's fields (not always identifiers).
        names = {source: f"f{i}" for i, source in enumerate(sources)}
        self.struct: type[Any] = msgspec.defstruct(
            f"{cls.__name__}Row",
            [(names[s], kinds[s], None) for s in sources],
            rename={names[s]: s for s in sources},
            gc=False,
        )
        # The rows as structs; any other JSON as orjson decodes it.
        self.decode = typed_or_json(msgspec.json.Decoder(list[self.struct]))  # type: ignore[name-defined]
        attributes = [names[source] for _, source, _ in plan]
        if len(attributes) == 1:
            only = attributes[0]
            self._values: Callable[[Any], Any] = lambda row: (getattr(row, only),)
        else:
            self._values = operator.attrgetter(*attributes)
        positions = {name: i for i, (name, _, _) in enumerate(plan)}
        self._keys = tuple(positions[name] for name in key_fields)
        self._cls = cls

    def records(self, rows: list[Any]) -> list[Any]:
        """Records of decoded rows: structs made here, or plain JSON (then by `to_record`)."""
        if not rows or type(rows[0]) is not self.struct:
            return [r for r in (to_record(self._cls, row) for row in rows) if r is not None]
        cls, post, keys, values_of = self._cls, self._post, self._keys, self._values
        made = []
        for row in rows:
            values = list(values_of(row))
            for index, convert in post:
                values[index] = convert(values[index])
            if any(values[k] is None for k in keys):
                continue
            made.append(cls(*values))
        return made


_READERS: dict[type[Any], RowReader] = {}


def row_reader(cls: type[Any]) -> RowReader:
    found = _READERS.get(cls)
    if found is None:
        found = _READERS[cls] = RowReader(cls)
    return found


def _upstream_casts(value: str) -> bool:
    """Whether the upstream's `cast()` would turn this string into a bool, number or date."""
    if value.strip().lower() in ("true", "false"):
        return True
    for number in (int, float):
        try:
            number(value)
        except ValueError:
            continue
        return True
    try:
        dateparser.parse(value)
    except (ValueError, OverflowError, TypeError):
        return False
    return True


def _encode_value(field: str, value: Any) -> str | None:
    """The query-string form of a value, or None if the upstream would misread it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        # Full instant in UTC: a time part stops the upstream's whole-day widening.
        return quote(moment.astimezone(UTC).isoformat(), safe=":")
    if isinstance(value, str):
        if not value or _OPERATOR_CHARS & set(value):
            return None
        if field not in _NEVER_CAST and _upstream_casts(value):
            return None
        return quote(value, safe="")
    return None


def _field_params(field: str, condition: Condition) -> list[str]:
    """Query parameters for one field that can only narrow the upstream's answer."""
    params: list[str] = []
    if condition.latest:
        params.append(f"{field}=latest")
    candidates = condition.candidates()
    if candidates is not None:
        encoded = [_encode_value(field, v) for v in candidates]
        # Repeated `=` values are OR'ed upstream; a list missing one value would lose rows.
        if not condition.latest and all(e is not None for e in encoded):
            params.extend(f"{field}={e}" for e in encoded)
        return params
    # One lower and one upper bound pair into a closed interval upstream (§2); more would OR.
    for bound, strict_op, inclusive_op in (
        (condition.lower(), ">", ">="),
        (condition.upper(), "<", "<="),
    ):
        if bound is None:
            continue
        encoded_bound = _encode_value(field, bound.value)
        if encoded_bound is not None:
            params.append(f"{field}{inclusive_op if bound.inclusive else strict_op}{encoded_bound}")
    return params


def build_query(spec: FilterSpec, *, skip: Iterable[str] = ()) -> str | None:
    """The upstream query string for a filter, or None when the filter cannot match anything."""
    skipped = set(skip)
    params: list[str] = []
    for field, condition in spec:
        if condition.unsatisfiable():
            return None
        if field not in skipped:
            params.extend(_field_params(field, condition))
    return "&".join(params)


def _chunks(keys: Sequence[int], field: str, base: str, budget: int) -> list[str]:
    """Split repeated `field=key` parameters into query strings that fit the URL budget."""
    queries: list[str] = []
    current: list[str] = []
    length = len(base)
    for key in keys:
        param = f"{field}={key}"
        if current and length + len(param) + 1 > budget:
            queries.append("&".join([*current, base] if base else current))
            current, length = [], len(base)
        current.append(param)
        length += len(param) + 1
    if current:
        queries.append("&".join([*current, base] if base else current))
    return queries


def openf1_token_fetcher(
    client: UpstreamClient, token_url: str, username: str, password: str
) -> TokenFetcher:
    """A fetcher for OpenF1's paid-account token (`POST /token`, `expires_in` as a string)."""
    return password_grant_fetcher(
        client, URL(token_url), {"username": username, "password": password}
    )


@dataclass(frozen=True)
class OpenF1Freshness:
    """Cache lifetimes that follow how OpenF1 data changes (reference §0, §3 data latency)."""

    settled_seconds: float = 6 * 3600
    recent_seconds: float = 300
    latest_seconds: float = 60
    stale_seconds: float = 300
    # How long after its end a session's (or meeting's) data is taken as final.
    settle_after: timedelta = timedelta(hours=1)
    # Pre-2026 meetings have no date_end; a weekend lasts at most this long.
    meeting_span: timedelta = timedelta(days=4)

    def policy(self, query: str, *, settled: bool = False) -> Policy:
        """`settled`: the rows belong to sessions known to have ended long ago (from the
        catalogue), so they are kept for hours whatever dates they carry."""

        def freshness(stored: Stored) -> Freshness | None:
            if stored.status == 200 and (settled or "=latest" in query):
                # Decided without reading the body (which may be megabytes of samples).
                ttl = self.latest_seconds if "=latest" in query else self.settled_seconds
                return Freshness(ttl, self.stale_seconds)
            if stored.status == 404 and _is_no_results(stored.body):
                rows: list[Any] = []
            elif stored.status == 200:
                try:
                    parsed = orjson.loads(stored.body)
                except orjson.JSONDecodeError:
                    return None
                rows = parsed if isinstance(parsed, list) else []
            else:
                return None
            if "=latest" in query:
                ttl = self.latest_seconds
            elif settled or (rows and all(self._settled(row) for row in rows)):
                ttl = self.settled_seconds
            else:
                ttl = self.recent_seconds
            return Freshness(ttl, self.stale_seconds)

        return freshness

    def _settled(self, row: Any) -> bool:
        if not isinstance(row, dict):
            return False
        end = parse_instant(row.get("date_end"))
        if end is None:
            start = parse_instant(row.get("date_start")) or parse_instant(row.get("date"))
            if start is None:
                return False
            end = start + self.meeting_span
        return end + self.settle_after < datetime.now(UTC)


class OpenF1Provider:
    """Reads meetings, sessions and per-session data; knows the query grammar and 404-as-empty."""

    name = UPSTREAM

    def __init__(
        self,
        client: UpstreamClient,
        *,
        max_url_length: int = 2000,
        freshness: OpenF1Freshness | None = None,
        catalogue: bool = True,
    ) -> None:
        self.client = client
        self.max_url_length = max_url_length
        self.freshness = freshness or OpenF1Freshness()
        self._parsed: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
        self._broker_header = ""
        # Meetings and sessions from the local catalogue (None: every lookup goes upstream).
        self.catalogue: Catalogue | None = None
        if catalogue:
            from .openf1_catalogue import Catalogue, CatalogueFreshness

            self.catalogue = Catalogue(
                self.read_list,
                CatalogueFreshness(
                    settled_seconds=self.freshness.settled_seconds,
                    live_seconds=self.freshness.recent_seconds,
                    stale_seconds=self.freshness.stale_seconds,
                ),
            )

    @property
    def token_auth(self) -> TokenAuth | None:
        auth = self.client.auth
        return auth if isinstance(auth, TokenAuth) else None

    async def broker_password(self) -> str:
        """The account's token: OpenF1's MQTT broker takes it as the password."""
        auth = self.token_auth
        if auth is None:
            raise UpstreamAuthFailed(UPSTREAM, "OpenF1's broker needs an account")
        self._broker_header = await auth.header() or ""
        return self._broker_header.removeprefix("Bearer ")

    async def broker_password_rejected(self) -> None:
        """The broker refused the token: the next `broker_password` fetches a new one."""
        auth = self.token_auth
        if auth is not None and self._broker_header:
            await auth.rejected(self._broker_header)

    async def meetings(self, spec: FilterSpec = ()) -> list[MeetingRecord]:
        if self.catalogue is not None:
            found = await self.catalogue.meetings(spec)
            if found is not None:
                return found
        return await self._list("meetings", MeetingRecord, spec)

    async def sessions(self, spec: FilterSpec = ()) -> list[F1SessionRecord]:
        if self.catalogue is not None:
            found = await self.catalogue.sessions(spec)
            if found is not None:
                return found
        return await self._list("sessions", F1SessionRecord, spec)

    async def meetings_by_key(self, keys: Sequence[int]) -> list[MeetingRecord]:
        if self.catalogue is not None:
            return await self.catalogue.meetings_by_key(keys)
        return await self._list("meetings", MeetingRecord, (), key_field="meeting_key", keys=keys)

    async def sessions_by_key(self, keys: Sequence[int]) -> list[F1SessionRecord]:
        if self.catalogue is not None:
            return await self.catalogue.sessions_by_key(keys)
        return await self._list("sessions", F1SessionRecord, (), key_field="session_key", keys=keys)

    async def sessions_by_meeting(
        self, meeting_keys: Sequence[int], spec: FilterSpec = ()
    ) -> list[F1SessionRecord]:
        if self.catalogue is not None:
            found = await self.catalogue.sessions_by_meeting(meeting_keys, spec)
            if found is not None:
                return found
        return await self._list(
            "sessions", F1SessionRecord, spec, key_field="meeting_key", keys=meeting_keys
        )

    async def telemetry(
        self,
        kind: TelemetryKind,
        session_key: int,
        driver_number: int,
        start: datetime | None,
        end: datetime | None,
    ) -> TelemetrySeries:
        """One driver's samples in `[start, end)`: one request, the window sent as OpenF1
        date filters (full instants in UTC, `+` escaped)."""
        spec: FilterSpec = (
            ("session_key", Condition(eq=session_key)),
            ("driver_number", Condition(eq=driver_number)),
        )
        if start is not None or end is not None:
            spec += (("date", Condition(gte=start, lt=end)),)
        query = build_query(spec)
        if query is None:
            return TelemetrySeries([], {name: [] for name in kind.channels})
        settled = self.catalogue is not None and await self.catalogue.all_settled(
            (session_key,), self.freshness.settle_after
        )
        policy = self.freshness.policy(query, settled=settled)
        rows, _ = await self._fetch_response(kind.collection, query, policy, kind.decode)
        return columns(rows, kind)

    async def read_list(self, collection: str, policy: Policy) -> tuple[list[Any], float, float]:
        """A whole unfiltered list (for the catalogue): rows, when fetched, fresh until."""
        rows, response = await self._fetch_response(collection, "", policy)
        return rows, response.stored_at or time.time(), response.fresh_until

    async def session_data(
        self, cls: type[RecordT], session_keys: Sequence[int], spec: FilterSpec = ()
    ) -> list[RecordT]:
        """Rows of a per-session collection (`cls` in SESSION_COLLECTIONS) for many sessions:
        one request with repeated `session_key=`, chunked to fit the URL."""
        settled = self.catalogue is not None and await self.catalogue.all_settled(
            session_keys, self.freshness.settle_after
        )
        return await self._list(
            SESSION_COLLECTIONS[cls],
            cls,
            spec,
            key_field="session_key",
            keys=session_keys,
            settled=settled,
        )

    async def live_rows(
        self, cls: type[RecordT], session_key: int, since: tuple[str, datetime] | None = None
    ) -> list[RecordT]:
        """A live topic's poll, never from the cache: a session's rows of `cls`'s collection,
        all of them or those whose field `since[0]` is at or after `since[1]`."""
        spec: FilterSpec = (("session_key", Condition(eq=session_key)),)
        if since is not None:
            spec += ((since[0], Condition(gte=since[1])),)
        collection = SESSION_COLLECTIONS.get(cls, "sessions")
        response = await self.client.get(
            collection, build_query(spec) or "", policy=uncached, tags=(collection,)
        )
        rows = self._rows(collection, response)
        return [
            r for r in (to_record(cls, row) for row in rows) if r is not None and matches(r, spec)
        ]

    async def _list(
        self,
        collection: str,
        cls: type[RecordT],
        spec: FilterSpec,
        *,
        key_field: str | None = None,
        keys: Sequence[int] = (),
        settled: bool = False,
    ) -> list[RecordT]:
        if key_field is not None and not keys:
            return []
        base = build_query(spec, skip=(key_field,) if key_field else ())
        if base is None:
            return []
        if key_field is None:
            queries = [base]
        else:
            budget = self.max_url_length - len(str(self.client.url(collection))) - 1
            queries = _chunks(list(dict.fromkeys(keys)), key_field, base, budget)
        pages = await asyncio.gather(*(self._records(collection, cls, q, settled) for q in queries))
        records = [record for page in pages for record in page if matches(record, spec)]
        if len(queries) > 1:
            records.sort(key=_upstream_order)
        return records

    async def _records(
        self, collection: str, cls: type[RecordT], query: str, settled: bool
    ) -> list[RecordT]:
        """An answer's rows as records, parsed once per stored answer and shared by every
        request that reads it (records are immutable)."""
        policy = self.freshness.policy(query, settled=settled)
        reader = row_reader(cls)
        rows, response = await self._fetch_response(collection, query, policy, reader.decode)
        key = (cls, collection, query, response.stored_at, response.fresh_until)
        if response.stored_at:
            found = self._parsed.get(key)
            if found is not None:
                self._parsed.move_to_end(key)
                return found
        records: list[RecordT] = reader.records(rows)
        if response.stored_at:
            self._parsed[key] = records
            while len(self._parsed) > _PARSED_ANSWERS:
                self._parsed.popitem(last=False)
        return records

    async def _fetch_response(
        self,
        collection: str,
        query: str,
        policy: Policy,
        decoder: Callable[[bytes], Any] = orjson.loads,
    ) -> tuple[list[Any], UpstreamResponse]:
        response = await self.client.get(
            collection, query, policy=policy, tags=(collection,), decoder=decoder
        )
        return self._rows(collection, response), response

    def _rows(self, collection: str, response: UpstreamResponse) -> list[Any]:
        if response.status == 404:
            if _is_no_results(response.body):
                return []
            raise UpstreamRejected(UPSTREAM, f"openf1 has no /{collection} endpoint", status=404)
        if response.status >= 400:
            raise self.client.error_for(response)
        try:
            payload = response.json()
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnavailable(
                UPSTREAM, "openf1 sent a response that is not valid JSON", status=response.status
            ) from exc
        # Some deployments answer 200 with the no-results body instead of a 404.
        if isinstance(payload, dict) and payload.get("detail") == NO_RESULTS:
            return []
        if not isinstance(payload, list):
            raise UpstreamUnavailable(
                UPSTREAM, "openf1 sent an unexpected response shape", status=response.status
            )
        return payload


def _is_no_results(body: bytes) -> bool:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(payload, dict) and payload.get("detail") == NO_RESULTS


def _upstream_order(record: Any) -> tuple[Any, ...]:
    # Records without a start (drivers, weather...) keep their order within a session: the
    # sort is stable and every session's rows come from one chunk.
    start = getattr(record, "date_start", None) or datetime.min.replace(tzinfo=UTC)
    return (start, record.meeting_key, getattr(record, "session_key", 0))
