"""Live feeds shared by subscribers: one upstream feed per topic for any number of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..cache import FallbackBackend
from ..config import Settings
from ..errors import SubscriptionLimit
from ..providers import Providers
from ._groups import Groups, Outbox, Subscribing, encode_next_payload, subscribing
from ._hub import Event, Feed, Hub
from .guidebook import ChangeKind, GuidebookChange, GuidebookChanges
from .openf1 import TOPICS, OpenF1Live, SessionStatus, SessionStatusRecord, decode_cursor
from .openf1_mqtt import OpenF1Mqtt
from .sqlrace import LiveSessionChange, LiveSessionKind, SqlRaceLive

__all__ = [
    "TOPICS",
    "ChangeKind",
    "Event",
    "Feed",
    "Groups",
    "GuidebookChange",
    "Hub",
    "Live",
    "LiveSessionChange",
    "LiveSessionKind",
    "Outbox",
    "SessionStatus",
    "SessionStatusRecord",
    "Subscribing",
    "build_live",
    "decode_cursor",
    "encode_next_payload",
    "subscribing",
]


@dataclass
class Live:
    """The process's live topics, and its count of live connections (MAX_LIVE_CONNECTIONS)."""

    hub: Hub
    openf1: OpenF1Live
    guidebook: GuidebookChanges
    sqlrace: SqlRaceLive | None
    max_connections: int
    connections: int = 0
    mqtt: OpenF1Mqtt | None = None
    # WebSocket subscribers of one live topic and document, served together.
    groups: Groups = field(default_factory=Groups)

    @contextlib.contextmanager
    def connection(self) -> Iterator[None]:
        """Holds one of the process's live connections while open; SUBSCRIPTION_LIMIT when
        none is left."""
        if self.connections >= self.max_connections:
            raise SubscriptionLimit(
                f"this server holds its most live connections ({self.max_connections}); "
                "try again later",
                "PER_PROCESS",
            )
        self.connections += 1
        try:
            yield
        finally:
            self.connections -= 1

    async def close(self) -> None:
        await self.groups.close()
        await self.hub.close()
        if self.mqtt is not None:
            await self.mqtt.close()


def build_live(settings: Settings, providers: Providers) -> Live:
    hub = Hub()
    mqtt = None
    if providers.openf1.token_auth is not None:
        # One broker connection per deployment: shared through the cache's Redis, if any.
        backend = providers.cache.backend
        redis = backend.primary.client if isinstance(backend, FallbackBackend) else None
        mqtt = OpenF1Mqtt(
            settings.openf1_mqtt_url,
            providers.openf1.broker_password,
            password_rejected=providers.openf1.broker_password_rejected,
            redis=redis,
        )
    openf1 = OpenF1Live(
        hub,
        providers.openf1,
        poll_seconds=settings.live_poll_seconds,
        rate_per_minute=settings.openf1_rate_per_minute,
        mqtt=mqtt,
        has_account=settings.openf1_username is not None,
    )
    guidebook = GuidebookChanges(
        hub,
        poll=settings.guidebook_webhook_token is None,
        poll_seconds=max(settings.live_poll_seconds, 30.0),
        daily_quota=settings.guidebook_daily_quota,
    )
    # The webhook receiver tells the server-key provider; callers' views share its listeners.
    base = providers.guidebook or (
        providers.guidebook_keys.base if providers.guidebook_keys else None
    )
    if base is not None:
        base.change_listeners.append(guidebook.webhook)
    sqlrace = (
        SqlRaceLive(hub, providers.sqlrace, poll_seconds=settings.live_poll_seconds)
        if providers.sqlrace is not None
        else None
    )
    return Live(hub, openf1, guidebook, sqlrace, settings.max_live_connections, mqtt=mqtt)
