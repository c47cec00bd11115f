"""OpenF1's live topics: one feed per (endpoint, session), fed by the MQTT broker when the
deployment has an account and it is up, otherwise by REST polls with a date cursor."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import orjson

from ..errors import (
    BadUserInput,
    NotFound,
    UpstreamAuthFailed,
    UpstreamError,
)
from ..providers.openf1 import (
    F1LapRecord,
    F1SessionRecord,
    IntervalRecord,
    OpenF1Provider,
    OvertakeRecord,
    PitStopRecord,
    PositionRecord,
    RaceControlRecord,
    SessionResultRecord,
    StintRecord,
    TeamRadioRecord,
    WeatherRecord,
    to_record,
)
from ._failures import PollFailures, RateLimits
from ._hub import Event, Feed, Hub
from ._tasks import stop_tasks

__all__ = [
    "TOPICS",
    "LiveTopic",
    "OpenF1Live",
    "SessionStatus",
    "SessionStatusRecord",
    "decode_cursor",
]

logger = logging.getLogger("sessiongraph.live")

# Every this many polls, whether the session is over (its results are out) is checked.
STATUS_EVERY_POLLS = 5
# While the broker is away, how long the feed polls before it asks the broker again.
BROKER_RETRY_SECONDS = 30.0
# Live polls may use at most this share of the OpenF1 rate budget; queries keep the rest.
POLL_BUDGET_SHARE = 0.5


@dataclass(frozen=True)
class LiveTopic:
    """One OpenF1 endpoint as a live topic. `identity` are the fields of OpenF1's `_key` (one
    row, whatever its versions); `overlap` is how far before the newest date seen each poll
    reads again, for late rows and corrections (a lap gets its times when it is completed)."""

    endpoint: str
    cls: type[Any]
    date_field: str | None
    identity: tuple[str, ...]
    overlap_seconds: float = 30.0
    # Seconds after `date_field` at which a row's later version happens (a lap's completion
    # is its start plus its duration): events, and so cursors, go in the order things happen.
    duration_field: str | None = None


TOPICS: dict[str, LiveTopic] = {
    topic.endpoint: topic
    for topic in (
        LiveTopic("race_control", RaceControlRecord, "date", ("date", "category", "message")),
        LiveTopic(
            "laps", F1LapRecord, "date_start", ("driver_number", "lap_number"), 300, "lap_duration"
        ),
        LiveTopic("position", PositionRecord, "date", ("date", "driver_number")),
        LiveTopic("intervals", IntervalRecord, "date", ("date", "driver_number")),
        LiveTopic(
            "pit", PitStopRecord, "date", ("driver_number", "lap_number"), 120, "lane_duration"
        ),
        # Stints carry no date: each poll reads the session's (short) list whole.
        LiveTopic("stints", StintRecord, None, ("driver_number", "stint_number")),
        LiveTopic("weather", WeatherRecord, "date", ("date",), 120),
        LiveTopic("team_radio", TeamRadioRecord, "date", ("date", "driver_number"), 60),
        LiveTopic(
            "overtakes",
            OvertakeRecord,
            "date",
            ("date", "overtaking_driver_number", "overtaken_driver_number"),
            60,
        ),
    )
}


class SessionStatus(Enum):
    SCHEDULED = "SCHEDULED"
    STARTED = "STARTED"
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"


_STATUS_RANK = {
    SessionStatus.SCHEDULED: 0,
    SessionStatus.STARTED: 1,
    SessionStatus.FINISHED: 2,
    SessionStatus.CANCELLED: 2,
}


@dataclass(frozen=True, slots=True)
class SessionStatusRecord:
    """A session's state as OpenF1's data shows it: started once race control or laps have
    rows, finished once its results are published (so a replay is live while it plays)."""

    session_key: int
    status: SessionStatus
    session: F1SessionRecord


def _text(value: Any) -> str:
    """A value as order text: dates in ISO form, counts zero-padded so that 9 comes before 10."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return f"{value:08d}"
    return "" if value is None else str(value)


def _revision(record: Any) -> tuple[str, str]:
    """Which version of its row a record is, the same in every process: rows gain values as
    they happen (a lap gets its times when completed), so versions rank by how many fields are
    set, then by a digest of their content (a correction with as many)."""
    values = [getattr(record, f.name) for f in dataclasses.fields(record)]
    filled = sum(value is not None for value in values)
    digest = hashlib.blake2b(orjson.dumps(values, default=str), digest_size=6).hexdigest()
    return f"{filled:03d}", digest


def _order(topic: LiveTopic, record: Any) -> tuple[Any, ...]:
    """(when this version happened, the rest of the row's identity, its revision): resuming
    after one version of a row still gives its later versions (after a lap's start, its
    completion)."""
    date = getattr(record, topic.date_field) if topic.date_field else None
    duration = getattr(record, topic.duration_field) if topic.duration_field else None
    if isinstance(date, datetime) and isinstance(duration, int | float):
        date += timedelta(seconds=duration)
    rest = (name for name in topic.identity if name != topic.date_field)
    return (_text(date), *(_text(getattr(record, name)) for name in rest), *_revision(record))


def encode_cursor(order: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(order)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, ...]:
    """A cursor back into its order; BAD_USER_INPUT for anything this gateway did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        order = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        order = None
    if not isinstance(order, list) or not order or not all(isinstance(v, str) for v in order):
        raise BadUserInput("`after` is not a cursor of this subscription")
    return tuple(order)


class _Merger:
    """Versions of rows in, events out: a row is an event when new or changed (the newest
    version wins, by `_id` when the broker sends one)."""

    def __init__(self, topic: LiveTopic) -> None:
        self.topic = topic
        self.latest: dict[tuple[Any, ...], Any] = {}
        self.newest: datetime | None = None
        self.ids: dict[str, int] = {}

    def since(self) -> tuple[str, datetime] | None:
        if self.topic.date_field is None or self.newest is None:
            return None
        return self.topic.date_field, self.newest - timedelta(seconds=self.topic.overlap_seconds)

    def take(self, records: list[Any]) -> list[Event[Any]]:
        events = []
        for record in records:
            identity = tuple(getattr(record, name) for name in self.topic.identity)
            if self.latest.get(identity) == record:
                continue
            self.latest[identity] = record
            date = getattr(record, self.topic.date_field) if self.topic.date_field else None
            if isinstance(date, datetime) and (self.newest is None or date > self.newest):
                self.newest = date
            order = _order(self.topic, record)
            events.append(Event(record, order, encode_cursor(order)))
        events.sort(key=lambda event: event.order)
        self._prune()
        return events

    def newer_id(self, key: Any, message_id: Any) -> bool:
        """Whether a broker message is newer than the last of its `_key` (ids rise)."""
        if not isinstance(key, str) or not isinstance(message_id, int):
            return True
        if message_id <= self.ids.get(key, -1):
            return False
        self.ids[key] = message_id
        return True

    def _prune(self) -> None:
        # Rows older than the re-read window are never compared again.
        if len(self.latest) < 20_000 or self.newest is None or self.topic.date_field is None:
            return
        horizon = self.newest - timedelta(seconds=2 * self.topic.overlap_seconds)
        field = self.topic.date_field
        self.latest = {
            k: r for k, r in self.latest.items() if (d := getattr(r, field)) is None or d >= horizon
        }
        if len(self.ids) > 50_000:
            self.ids.clear()


class OpenF1Live:
    """The process's OpenF1 live topics, over the hub."""

    def __init__(
        self,
        hub: Hub,
        provider: OpenF1Provider,
        *,
        poll_seconds: float,
        rate_per_minute: float,
        mqtt: Any = None,
        has_account: bool = False,
    ) -> None:
        self.hub = hub
        self.provider = provider
        self.poll_seconds = poll_seconds
        self.rate_per_minute = rate_per_minute
        # OpenF1Mqtt (live/openf1_mqtt.py) when the deployment has an account.
        self.mqtt = mqtt
        self.has_account = has_account
        self.polling = 0
        self.sleep: Callable[[float], Any] = asyncio.sleep

    def interval(self) -> float:
        """The poll interval: LIVE_POLL_SECONDS, longer when the topics polled at once would
        spend more than their share of the OpenF1 rate budget."""
        if self.rate_per_minute <= 0:
            return self.poll_seconds
        budgeted = max(1, self.polling) * 60 / (self.rate_per_minute * POLL_BUDGET_SHARE)
        return max(self.poll_seconds, budgeted)

    async def session_key(self, session_key: int | None, latest: bool) -> int:
        """The session a subscription follows: `sessionKey`, or OpenF1's `latest` now."""
        if (session_key is None) == (not latest):
            raise BadUserInput("takes exactly one of `sessionKey` or `latest: true`")
        if session_key is not None:
            return session_key
        from ..filtering import Condition

        found = await self.provider.sessions((("session_key", Condition(latest=True)),))
        if not found:
            raise NotFound("no latest session")
        return found[0].session_key

    async def events(
        self, endpoint: str, session_key: int, after: str | None
    ) -> AsyncIterator[Event[Any]]:
        topic = TOPICS[endpoint]
        order = decode_cursor(after) if after is not None else None
        await self._session(session_key)
        async for event in self.hub.subscribe(
            _topic_key(endpoint, session_key),
            lambda feed: self._produce(topic, session_key, feed),
            after=order,
        ):
            yield event

    def is_over(self, endpoint: str, session_key: int) -> bool:
        """Whether the topic is known to be over (see `Hub.is_over`)."""
        return self.hub.is_over(_topic_key(endpoint, session_key))

    async def statuses(self, session_key: int) -> AsyncIterator[SessionStatusRecord]:
        """The session's state now, then each change; ends once it is finished or cancelled."""
        await self._session(session_key)
        async for event in self.hub.subscribe(
            _topic_key("status", session_key),
            lambda feed: self._produce_status(session_key, feed),
            replay_all=True,
            backlog_size=1,
        ):
            yield event.value

    async def _session(self, session_key: int) -> F1SessionRecord:
        found = await self.provider.sessions_by_key([session_key])
        if not found:
            raise NotFound(f"no session with key {session_key}")
        return found[0]

    # --- producers -----------------------------------------------------------------------

    async def _produce(self, topic: LiveTopic, session_key: int, feed: Feed[Any]) -> None:
        merger = _Merger(topic)
        # The baseline is what a query shows (the same cached read): events are what came
        # after it, so a client that queries and then subscribes misses nothing.
        feed.baseline(merger.take(await self.provider.session_data(topic.cls, [session_key])))
        feed.over = await self._over(session_key)
        feed.mark_ready()
        if feed.over:
            return
        while True:
            if self.mqtt is not None:
                try:
                    await self._from_broker(topic, session_key, feed, merger)
                    return  # the session is over
                except _BrokerAway:
                    pass
            # Polls until the session is over, or (with a broker) until it is worth asking
            # the broker again.
            again = None if self.mqtt is None else time.monotonic() + BROKER_RETRY_SECONDS
            if await self._poll(topic, session_key, feed, merger, again):
                return

    async def _from_broker(
        self, topic: LiveTopic, session_key: int, feed: Feed[Any], merger: _Merger
    ) -> None:
        """Events from the broker until the session is over; _BrokerAway when it is lost."""
        from .openf1_mqtt import PAUSED, LiveFeedLost, Marker

        async def consume() -> None:
            async with self.mqtt.topic(topic.endpoint) as messages:
                if not messages.subscribed.is_set():
                    # Polls go on until the broker sends the topic: one that cannot be
                    # reached is given up only after the lease, and nothing may wait that long.
                    polling = asyncio.create_task(self._poll(topic, session_key, feed, merger))
                    try:
                        await messages.subscribed.wait()
                    finally:
                        await stop_tasks(polling)
                # Rows between the baseline (or the last poll) and the subscription, which
                # the broker will not repeat.
                await self._poll_once(topic, session_key, feed, merger, merger.since())
                # Where a pause began: rows after it are read again once the broker is back
                # (by then newer messages may have moved the merger's cursor past them).
                paused_at: tuple[str, datetime] | None = None
                async for message in messages:
                    if isinstance(message, Marker):
                        if message is PAUSED:
                            paused_at = merger.since()
                        else:
                            await self._refill(topic, session_key, feed, merger, paused_at)
                        continue
                    if message.get("session_key") != session_key:
                        continue
                    if not merger.newer_id(message.get("_key"), message.get("_id")):
                        continue
                    record = to_record(topic.cls, message)
                    if record is not None:
                        for event in merger.take([record]):
                            feed.publish(event)

        consumer = asyncio.create_task(consume())
        watcher = asyncio.create_task(self._until_over(session_key))
        try:
            done, _ = await asyncio.wait({consumer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if consumer in done:
                consumer.result()  # raises what ended it
                raise _BrokerAway  # the broker ended the stream: poll, then ask again
        except LiveFeedLost as lost:
            logger.warning(
                "openf1 broker lost; polling instead",
                extra={"topic": topic.endpoint, "error": str(lost)},
            )
            raise _BrokerAway from lost
        finally:
            await stop_tasks(consumer, watcher)

    async def _refill(
        self,
        topic: LiveTopic,
        session_key: int,
        feed: Feed[Any],
        merger: _Merger,
        since: tuple[str, datetime] | None,
    ) -> None:
        """Rows from `since` on, which the broker did not send while it paused (its stream
        goes on either way)."""
        try:
            await self._poll_once(topic, session_key, feed, merger, since)
        except UpstreamError as exc:
            logger.warning(
                "openf1 rows missed during a broker pause could not be read",
                extra={"topic": topic.endpoint, "error": str(exc)},
            )

    async def _until_over(self, session_key: int) -> None:
        """Returns once the session is over (checked as often as polls would check it)."""
        while True:
            await self.sleep(self.poll_seconds * STATUS_EVERY_POLLS)
            with contextlib.suppress(UpstreamError):
                if await self._over(session_key):
                    return

    async def _poll(
        self,
        topic: LiveTopic,
        session_key: int,
        feed: Feed[Any],
        merger: _Merger,
        until: float | None = None,
    ) -> bool:
        """Polls until the session is over (True) or `until` (monotonic) passes (False)."""
        self.polling += 1
        try:
            polls = 0
            failures = self._failures()
            while until is None or time.monotonic() < until:
                await self.sleep(self.interval() * random.uniform(0.9, 1.1))
                try:
                    await self._poll_once(topic, session_key, feed, merger, merger.since())
                    polls += 1
                    if polls % STATUS_EVERY_POLLS == 0 and await self._over(session_key):
                        return True
                    failures.succeeded()
                except UpstreamError as exc:
                    self._failed(failures, exc)
            return False
        finally:
            self.polling -= 1

    async def _poll_once(
        self,
        topic: LiveTopic,
        session_key: int,
        feed: Feed[Any],
        merger: _Merger,
        since: tuple[str, datetime] | None,
    ) -> None:
        """One read of the rows from `since` on (all of them with None), published as events."""
        records = await self.provider.live_rows(topic.cls, session_key, since)
        for event in merger.take(records):
            feed.publish(event)

    @staticmethod
    def _failures() -> PollFailures:
        # OpenF1's limits are per second and per minute: a 429 passes, it never ends a feed.
        return PollFailures(RateLimits.RIDE_OUT)

    def _failed(self, failures: PollFailures, exc: UpstreamError) -> None:
        """Raise (ending the topic with the coded error) unless the failure is worth riding out;
        a live window's 401 without an account says what is missing."""
        if isinstance(exc, UpstreamAuthFailed) and not self.has_account:
            raise UpstreamAuthFailed(
                exc.upstream,
                "OpenF1 serves live data only to accounts (set SESSIONGRAPH_OPENF1_USERNAME "
                f"and SESSIONGRAPH_OPENF1_PASSWORD): {exc.message}",
                status=exc.status,
            ) from exc
        failures.failed(exc)

    async def _over(self, session_key: int) -> bool:
        return await self._status(session_key) in (SessionStatus.FINISHED, SessionStatus.CANCELLED)

    async def _status(self, session_key: int) -> SessionStatus:
        record = await self._status_record(session_key)
        return record.status

    async def _status_record(self, session_key: int) -> SessionStatusRecord:
        sessions = await self.provider.live_rows(F1SessionRecord, session_key)
        if not sessions:
            raise NotFound(f"no session with key {session_key}")
        session = sessions[0]
        if session.is_cancelled:
            status = SessionStatus.CANCELLED
        elif await self.provider.live_rows(SessionResultRecord, session_key):
            status = SessionStatus.FINISHED
        elif await self.provider.live_rows(RaceControlRecord, session_key):
            status = SessionStatus.STARTED
        else:
            status = SessionStatus.SCHEDULED
        return SessionStatusRecord(session_key, status, session)

    async def _produce_status(self, session_key: int, feed: Feed[Any]) -> None:
        def event(record: SessionStatusRecord) -> Event[Any]:
            # Ranked as a session goes, so that resuming after STARTED still gives FINISHED.
            order = (str(_STATUS_RANK[record.status]), record.status.value)
            return Event(record, order, encode_cursor(order))

        current = await self._status_record(session_key)
        feed.baseline([event(current)])
        feed.mark_ready()
        self.polling += 1
        try:
            failures = self._failures()
            while current.status in (SessionStatus.SCHEDULED, SessionStatus.STARTED):
                await self.sleep(self.interval() * random.uniform(0.9, 1.1))
                try:
                    found = await self._status_record(session_key)
                    failures.succeeded()
                except UpstreamError as exc:
                    self._failed(failures, exc)
                    continue
                if found.status != current.status:
                    current = found
                    feed.publish(event(current))
        finally:
            self.polling -= 1


class _BrokerAway(Exception):
    pass


def _topic_key(endpoint: str, session_key: int) -> tuple[str, str, int]:
    return ("openf1", endpoint, session_key)
