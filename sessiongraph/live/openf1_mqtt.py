"""The deployment's one connection to OpenF1's MQTT broker: held by one process at a time
(a Redis lease), relayed to the others through Redis pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import ssl
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ._tasks import stop_tasks

__all__ = [
    "PAUSED",
    "RESUMED",
    "Listener",
    "LiveFeedLost",
    "Marker",
    "OpenF1Mqtt",
    "SlowListener",
]

logger = logging.getLogger("sessiongraph.live")

# A listener this many messages behind is cut off instead of buffering without bound.
LISTENER_QUEUE = 10_000
# Relayed on a topic's channel ahead of the next message after messages that were never relayed
# (the holder resubscribes on a new connection, or Redis refused to relay). Not JSON, so no
# process reads it as a message.
_GAP = b"\x00sessiongraph: gap"
# CONNACK "bad user name or password" / "not authorized", as MQTT 3.1.1 and 5 number them.
_REFUSED_CODES = frozenset({4, 5, 134, 135})

# Takes the lease when nobody holds it, renews it while this process does.
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LiveFeedLost(Exception):
    """The broker (or the relay) has been unreachable too long, or refused our account: the
    listener ends; callers fill the gap by REST and may listen again later. Messages published
    meanwhile are lost (QoS 0), as they are on OpenF1's own broker."""


class SlowListener(LiveFeedLost):
    """This listener fell LISTENER_QUEUE messages behind and was cut off."""


class Marker:
    """Among a listener's messages: where the broker stopped sending the topic here (a lost
    connection, a relay outage) and where it sends it again. Messages between may be missing."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PAUSED = Marker("PAUSED")
RESUMED = Marker("RESUMED")


@dataclass(eq=False)
class Listener:
    """One consumer's messages of one topic, and `Marker`s; iterating raises what ended it."""

    queue: asyncio.Queue[dict[str, Any] | Marker | BaseException] = field(
        default_factory=lambda: asyncio.Queue(LISTENER_QUEUE)
    )
    ended: bool = False
    # Set once the broker sends this topic here (or the listener ended): until then a feed
    # must poll, since an unreachable broker is only given up after the lease.
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, message: dict[str, Any] | Marker) -> None:
        if self.ended:
            return
        if self.queue.qsize() >= LISTENER_QUEUE - 1:
            self.end(SlowListener(f"fell {LISTENER_QUEUE} broker messages behind"))
            return
        self.queue.put_nowait(message)

    def end(self, error: BaseException) -> None:
        if not self.ended:
            self.ended = True
            self.subscribed.set()  # a waiter wakes up, and its next message raises `error`
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(error)

    # An iterator object rather than an async generator: a caller may time out a wait for the
    # next message and wait again, where a cancelled generator would be finished for good.
    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> dict[str, Any] | Marker:
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


@dataclass(frozen=True)
class _Broker:
    host: str
    port: int
    transport: str
    path: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> _Broker:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        defaults = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}
        if scheme not in defaults or not parts.hostname:
            raise ValueError(f"not an MQTT URL (mqtt://, mqtts://, ws://, wss://): {scheme}://")
        websocket = scheme in ("ws", "wss")
        return cls(
            parts.hostname,
            parts.port or defaults[scheme],
            "websockets" if websocket else "tcp",
            (parts.path or "/mqtt") if websocket else None,
            scheme in ("mqtts", "wss"),
        )

    def shown(self) -> str:
        scheme = {("tcp", False): "mqtt", ("tcp", True): "mqtts"}.get(
            (self.transport, self.tls), "wss" if self.tls else "ws"
        )
        return f"{scheme}://{self.host}:{self.port}{self.path or ''}"


class OpenF1Mqtt:
    """Listeners per endpoint (`topic()`); one broker connection for all of them.

    Without `redis` this process connects. With it, processes compete for `<prefix>lease`; the
    holder subscribes to what any process wants (`<prefix>wanted`, refreshed by each) and
    republishes every message on `<prefix>v1/<endpoint>`, and every process (the holder too)
    hands its listeners what arrives there. `<prefix>broker` says whether the holder is
    connected, so followers learn of an outage; a gap signal on a topic's channel, ahead of the
    next message, tells them of one too short for them to see.
    """

    def __init__(
        self,
        url: str,
        password: Callable[[], Awaitable[str]],
        *,
        password_rejected: Callable[[], Awaitable[None]] | None = None,
        username: str = "sessiongraph",
        redis: aioredis.Redis | None = None,
        prefix: str = "sessiongraph:live:openf1:",
        lease_seconds: float = 10.0,
        reconnect_seconds: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.broker = _Broker.parse(url)
        self.password = password
        self.password_rejected = password_rejected
        self.username = username
        self.redis = redis
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.reconnect_seconds = reconnect_seconds
        # How often a follower reads `<prefix>broker` while it relays messages.
        self.state_check_seconds = 1.0
        self.identity = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.listeners: dict[str, set[Listener]] = defaultdict(set)
        # Topics the broker sends to this process, directly or through the relay.
        self._subscribed: set[str] = set()
        self.connected = False
        self.holder = redis is None
        self.failures = 0
        self.last_message = 0.0
        self._changed = asyncio.Event()
        # Topics whose relay owes the followers a gap signal; relaying is one publish at a time,
        # so the signal lands before the message after it.
        self._gaps: set[str] = set()
        self._wanted_everywhere: set[str] = set()
        self._relay_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # --- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        # The loops also stop on `_closed`, in case a library turned the cancel into one of its
        # own errors (aiomqtt's disconnect can).
        await stop_tasks(*self._tasks)
        self._tasks.clear()
        if self.redis is not None and self.holder:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.eval(_RELEASE, 1, self.prefix + "lease", self.identity)
        self.holder = self.redis is None
        for listeners in self.listeners.values():
            for listener in listeners:
                listener.end(LiveFeedLost("the gateway is shutting down"))

    def _ensure_running(self) -> None:
        if self._tasks or self._closed:
            return
        if self.redis is None:
            self._tasks.append(asyncio.create_task(self._hold(), name="openf1 mqtt"))
        else:
            self._tasks.append(asyncio.create_task(self._lease(), name="openf1 mqtt lease"))
            self._tasks.append(asyncio.create_task(self._follow(), name="openf1 mqtt relay"))

    def status(self) -> dict[str, Any]:
        return {
            "url": self.broker.shown(),
            "connected": self.connected,
            "holder": self.holder,
            "topics": sorted(e for e, ls in self.listeners.items() if ls),
            "lastMessageAgeSeconds": (
                round(time.time() - self.last_message, 1) if self.last_message else None
            ),
            "failures": self.failures,
        }

    # --- listeners -------------------------------------------------------------------------

    def topic(self, endpoint: str) -> AbstractAsyncContextManager[Listener]:
        """The topic's messages, for as long as the context lasts."""
        return self._topic(endpoint)

    @asynccontextmanager
    async def _topic(self, endpoint: str) -> AsyncIterator[Listener]:
        listener = Listener()
        self.listeners[endpoint].add(listener)
        if endpoint in self._subscribed:
            listener.subscribed.set()
        self._changed.set()
        self._ensure_running()
        try:
            yield listener
        finally:
            self.listeners[endpoint].discard(listener)
            if not self.listeners[endpoint]:
                del self.listeners[endpoint]
            self._changed.set()

    def _wanted_here(self) -> set[str]:
        return {endpoint for endpoint, listeners in self.listeners.items() if listeners}

    def _deliver(self, endpoint: str, payload: bytes | bytearray | str) -> None:
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            logger.debug("openf1 broker message is not JSON", extra={"topic": endpoint})
            return
        if not isinstance(message, dict):
            return
        self.last_message = time.time()
        for listener in list(self.listeners.get(endpoint, ())):
            listener.put(message)

    def _confirm(self, subscribed: set[str]) -> None:
        """`subscribed`: the topics the broker now sends to this process. A listener learns
        when its topic starts; later, when it pauses (`PAUSED`) and starts again (`RESUMED`)."""
        lost, regained = self._subscribed - subscribed, subscribed - self._subscribed
        self._subscribed = subscribed
        for endpoint in lost:
            for listener in self.listeners.get(endpoint, ()):
                if listener.subscribed.is_set():
                    listener.put(PAUSED)
        for endpoint in regained:
            for listener in self.listeners.get(endpoint, ()):
                if listener.subscribed.is_set():
                    listener.put(RESUMED)
                else:
                    listener.subscribed.set()

    def _gap(self, endpoint: str) -> None:
        """Messages of `endpoint` were not relayed (a new broker connection, a relay failure).
        A listener that never saw the outage (it fell between two reads of the broker state)
        learns of it now, ahead of the next message: a pause and a resumption at once."""
        # Not sent here: paused already (its RESUMED is still to come), or never started.
        if endpoint in self._subscribed:
            self._confirm(self._subscribed - {endpoint})
            self._confirm(self._subscribed | {endpoint})

    def _lose(self, reason: str) -> None:
        for listeners in self.listeners.values():
            for listener in listeners:
                listener.end(LiveFeedLost(reason))

    # --- holding the connection ------------------------------------------------------------

    async def _hold(self) -> None:
        """Connects while anything is wanted; resubscribes after every reconnect."""
        delay = self.reconnect_seconds[0]
        down_since: float | None = None
        rejected = False
        while not self._closed and self.holder:
            wanted = await self._wanted()
            if not wanted:
                self._changed.clear()
                # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancel that lands
                # as the event fires, and close() would wait for this task forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._changed.wait()
                continue
            try:
                await self._connected_session()
            except aiomqtt.MqttCodeError as exc:
                code = getattr(exc.rc, "value", exc.rc)
                if code in _REFUSED_CODES:
                    if rejected or self.password_rejected is None:
                        self._lose("OpenF1's broker refused the account (not authorized)")
                        rejected = False
                    else:
                        rejected = True
                        await self.password_rejected()
                        continue
                down_since = down_since or time.monotonic()
            except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
                logger.info("openf1 broker unreachable", extra={"error": str(exc)})
                down_since = down_since or time.monotonic()
            else:
                down_since = None
                delay = self.reconnect_seconds[0]
                continue
            finally:
                self.connected = False
                await self._mark(False)
            self.failures += 1
            if down_since is not None and time.monotonic() - down_since > self.lease_seconds:
                self._lose(f"OpenF1's broker {self.broker.shown()} has been unreachable")
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.reconnect_seconds[1])

    async def _connected_session(self) -> None:
        """One connection, until it drops or nothing is wanted any more (then it returns)."""
        tls = ssl.create_default_context() if self.broker.tls else None
        async with aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.username,
            password=await self.password(),
            identifier=f"sessiongraph-{self.identity}",
            transport=self.broker.transport,  # type: ignore[arg-type]
            websocket_path=self.broker.path,
            tls_context=tls,
            keepalive=30,
            timeout=10,
        ) as client:
            self.connected = True
            await self._mark(True)
            subscribed: set[str] = set()
            reader = asyncio.create_task(self._read(client))
            try:
                while True:
                    wanted = await self._wanted()
                    if not wanted:
                        return
                    for endpoint in sorted(wanted - subscribed):
                        if self.redis is not None:
                            self._gaps.add(endpoint)
                            await self._relay(endpoint)
                        await client.subscribe(f"v1/{endpoint}")
                    for endpoint in sorted(subscribed - wanted):
                        await client.unsubscribe(f"v1/{endpoint}")
                    subscribed = wanted
                    if self.redis is None:
                        self._confirm(subscribed)
                    else:  # the followers (this process's among them) learn it through Redis
                        await self._mark(True, subscribed)
                        for endpoint in sorted(self._gaps & subscribed):
                            await self._relay(endpoint)
                    self._changed.clear()
                    changed = asyncio.create_task(self._changed.wait())
                    done, _ = await asyncio.wait(
                        {reader, changed}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                    )
                    changed.cancel()
                    if reader in done:
                        reader.result()  # the connection dropped: raises MqttError
                        return
            finally:
                if self.redis is None:
                    self._confirm(set())
                await stop_tasks(reader)

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            endpoint = str(message.topic).removeprefix("v1/")
            payload = message.payload
            if not isinstance(payload, bytes | bytearray | str):
                continue
            if self.redis is None:
                self._deliver(endpoint, payload)
            else:
                await self._relay(endpoint, payload)

    async def _relay(self, endpoint: str, payload: bytes | bytearray | str | None = None) -> None:
        """Republishes a message for every process, after the gap signal it owes; with no
        `payload`, sends the signal alone. While Redis refuses, messages are dropped and owed."""
        assert self.redis is not None
        channel = f"{self.prefix}v1/{endpoint}"
        async with self._relay_lock:
            try:
                if endpoint in self._gaps:
                    await self.redis.publish(channel, _GAP)
                    self._gaps.discard(endpoint)
                if payload is not None:
                    await self.redis.publish(channel, payload)
            except (RedisError, OSError) as exc:
                if endpoint not in self._gaps:
                    logger.warning("openf1 relay unavailable", extra={"error": str(exc)})
                self._gaps.add(endpoint)

    async def _wanted(self) -> set[str]:
        """What to subscribe to: this process's topics, or with Redis everyone's (while Redis
        is away, what everyone wanted last, so its outage unsubscribes nobody)."""
        if self.redis is None:
            return self._wanted_here()
        try:
            now = time.time()
            members = await self.redis.zrangebyscore(self.prefix + "wanted", now, "+inf")
        except (RedisError, OSError):
            return self._wanted_here() | self._wanted_everywhere
        self._wanted_everywhere = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
        return self._wanted_everywhere

    async def _mark(self, up: bool, subscribed: Iterable[str] = ()) -> None:
        """Tells the followers whether the broker is up, and which topics it sends."""
        if self.redis is None:
            return
        state = " ".join(["up", *sorted(subscribed)]) if up else "down"
        with contextlib.suppress(RedisError, OSError):
            await self.redis.set(
                self.prefix + "broker", state.encode(), px=int(self.lease_seconds * 1000)
            )

    # --- Redis: the lease and the relay ----------------------------------------------------

    async def _lease(self) -> None:
        """Holds the connection while this process holds the lease, claiming it every third of
        it. A holder that loses the lease disconnects at once; one that cannot reach Redis keeps
        it as long as it would last there."""
        assert self.redis is not None
        key, ttl = self.prefix + "lease", int(self.lease_seconds * 1000)
        holding: asyncio.Task[None] | None = None
        claimed = -math.inf
        try:
            while not self._closed:
                asked = time.monotonic()
                try:
                    mine = bool(await self.redis.eval(_CLAIM, 1, key, self.identity, ttl))
                    if mine:
                        claimed = asked
                except (RedisError, OSError):
                    mine = holding is not None and asked - claimed < self.lease_seconds
                if mine and (holding is None or holding.done()):
                    if holding is not None and not holding.cancelled() and holding.exception():
                        logger.error("openf1 broker holder failed", exc_info=holding.exception())
                    self.holder = True
                    holding = asyncio.create_task(self._hold(), name="openf1 mqtt holder")
                elif not mine and holding is not None:
                    self.holder = False
                    await stop_tasks(holding)
                    holding = None
                await asyncio.sleep(self.lease_seconds / 3)
        finally:
            if holding is not None:
                await stop_tasks(holding)

    async def _follow(self) -> None:
        """Hands this process's listeners what the holder relays; tells them when the broker
        (or Redis) has been away longer than the lease."""
        assert self.redis is not None
        pubsub = self.redis.pubsub()
        channels: set[str] = set()
        away_since: float | None = None
        refreshed = 0.0
        try:
            while not self._closed:
                wanted = self._wanted_here()
                try:
                    if time.monotonic() - refreshed > self.lease_seconds / 3 and wanted:
                        expiry = time.time() + self.lease_seconds * 3
                        await self.redis.zadd(self.prefix + "wanted", dict.fromkeys(wanted, expiry))
                        await self.redis.zremrangebyscore(self.prefix + "wanted", 0, time.time())
                        refreshed = time.monotonic()
                    target = {f"{self.prefix}v1/{e}" for e in wanted}
                    if target - channels:
                        await pubsub.subscribe(*(target - channels))
                    if channels - target:
                        await pubsub.unsubscribe(*(channels - target))
                    channels = target
                    if not channels:
                        self._changed.clear()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(1.0):
                                await self._changed.wait()
                        continue
                    # Read before waiting for messages: a new listener learns at once that
                    # the holder already has its topic (then its feed stops polling).
                    found = await self.redis.get(self.prefix + "broker")
                    state = (found.decode() if isinstance(found, bytes) else found or "").split()
                    up = state[:1] == ["up"]
                    relayed = set(state[1:]) if up else set()
                    self._confirm(wanted & relayed)  # the relay's channels are `wanted`
                    deadline = time.monotonic() + self.state_check_seconds
                    while time.monotonic() < deadline:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=0.2
                        )
                        if message is not None and message.get("type") == "message":
                            channel = message["channel"]
                            name = channel.decode() if isinstance(channel, bytes) else channel
                            endpoint = name.removeprefix(f"{self.prefix}v1/")
                            if message["data"] == _GAP:
                                self._gap(endpoint)
                            else:
                                self._deliver(endpoint, message["data"])
                except (RedisError, OSError):
                    up = False
                    self._confirm(set())
                    await asyncio.sleep(0.5)
                if up:
                    away_since = None
                    continue
                away_since = away_since or time.monotonic()
                if time.monotonic() - away_since > self.lease_seconds:
                    self._lose("OpenF1's broker (or the Redis relay) has been unreachable")
                    away_since = None
        finally:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
