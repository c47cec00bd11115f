"""An MQTT broker in the image of `mqtt.openf1.org`, for the OpenF1 emulator's live replay.

It is amqtt (pure Python, MQTT 3.1.1) embedded in the emulators' event loop on loopback: a TCP
listener (`mqtt://host:port`) and a WebSocket one (`ws://host:port/mqtt`, subprotocol `mqtt`).
As the reference says of OpenF1's broker:

- the password must be a token the emulator's `/token` issued and that has not expired; any
  username is accepted (MQTT 3.1.1 needs one when a password is sent). Anything else gets
  CONNACK 5, "not authorized";
- at most `max_connections_per_user` (10) connections at a time per user, i.e. per OpenF1
  account the token belongs to, whichever tokens and usernames they use; the next is refused
  with CONNACK 5 too;
- the emulator publishes; what clients publish is not passed on.

`stop()` and `start()` take it down and bring it back on the same ports, the way OpenF1 takes
its broker down for updates: connected clients are cut off and new ones are refused meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from amqtt.broker import Broker
from amqtt.contexts import Action, BrokerConfig, ListenerConfig, ListenerType
from amqtt.plugins.base import BaseAuthPlugin

__all__ = ["MAX_CONNECTIONS_PER_USER", "Authenticator", "OpenF1Broker"]

MAX_CONNECTIONS_PER_USER: Final = 10
WEBSOCKET_PATH: Final = "/mqtt"
# (username, password) -> the account the password is a valid token of, or None.
Authenticator = Callable[[str | None, str | None], str | None]

_log = logging.getLogger(__name__)


class OpenF1Broker:
    """The broker's lifecycle, its listeners' URLs, its gate and `publish`."""

    def __init__(
        self,
        authenticate: Authenticator,
        host: str = "127.0.0.1",
        *,
        max_connections_per_user: int = MAX_CONNECTIONS_PER_USER,
        websocket: bool = True,
    ) -> None:
        self.authenticate = authenticate
        self.host = host
        self.max_connections_per_user = max_connections_per_user
        self.websocket = websocket
        self.port: int | None = None
        self.ws_port: int | None = None
        self.refused = 0
        self._broker: Any = None
        # Admitted sessions per account; a session leaves on its disconnect event or when found
        # disconnected (amqtt skips the event when it drops a client for a protocol error).
        self._admitted: dict[str, list[Any]] = {}

    @property
    def running(self) -> bool:
        return self._broker is not None

    @property
    def url(self) -> str | None:
        return None if self.port is None else f"mqtt://{self._shown_host}:{self.port}"

    @property
    def ws_url(self) -> str | None:
        if self.ws_port is None:
            return None
        return f"ws://{self._shown_host}:{self.ws_port}{WEBSOCKET_PATH}"

    @property
    def _shown_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def connections(self, account: str | None = None) -> int:
        """Live connections of `account`, or of every account."""
        self._prune()
        if account is not None:
            return len(self._admitted.get(account, []))
        return sum(len(sessions) for sessions in self._admitted.values())

    def status(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "url": self.url,
            "ws_url": self.ws_url if self.websocket else None,
            "connections": self.connections() if self.running else 0,
            "max_connections_per_user": self.max_connections_per_user,
            "refused": self.refused,
        }

    async def start(self) -> None:
        """Listen (on free ports the first time, on the same ones after a stop)."""
        if self._broker is not None:
            return
        if self.port is None:
            self.port = _free_port(self.host)
        if self.websocket and self.ws_port is None:
            self.ws_port = _free_port(self.host)
        listeners = {"default": ListenerConfig(type=ListenerType.TCP, bind=self._bind(self.port))}
        if self.websocket and self.ws_port is not None:
            listeners["ws"] = ListenerConfig(type=ListenerType.WS, bind=self._bind(self.ws_port))
        config = BrokerConfig(
            listeners=listeners,
            plugins={f"{__name__}._TokenGate": {"broker": self}},
        )
        broker = _Broker(config)
        await broker.start()
        self._broker = broker
        _log.info("OpenF1 MQTT broker on %s", self.url)

    async def stop(self) -> None:
        """Cut every client off and stop listening."""
        broker, self._broker = self._broker, None
        self._admitted.clear()
        if broker is not None:
            await broker.shutdown()

    async def publish(self, topic: str, payload: bytes) -> bool:
        """Send `payload` to the subscribers of `topic`; False when the broker is down."""
        broker = self._broker
        if broker is None:
            return False
        # No forced QoS: each subscriber gets the QoS it subscribed with.
        await broker.internal_message_broadcast(topic, payload, None)
        return True

    def _bind(self, port: int) -> str:
        return f"{self.host}:{port}"

    def _prune(self) -> None:
        for account, sessions in list(self._admitted.items()):
            alive = [s for s in sessions if s.transitions.state != "disconnected"]
            if alive:
                self._admitted[account] = alive
            else:
                del self._admitted[account]

    def _admit(self, session: Any) -> bool:
        account = self.authenticate(session.username, session.password)
        if account is None:
            self.refused += 1
            _log.info("MQTT connection refused: no valid token as password")
            return False
        self._prune()
        sessions = self._admitted.setdefault(account, [])
        if len(sessions) >= self.max_connections_per_user:
            self.refused += 1
            _log.info("MQTT connection refused: %d connections already", len(sessions))
            return False
        sessions.append(session)
        return True

    def _release(self, session: Any) -> None:
        for account, sessions in list(self._admitted.items()):
            kept = [s for s in sessions if s is not session]
            if kept:
                self._admitted[account] = kept
            else:
                del self._admitted[account]


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class _TokenGate(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt's authentication hook, handing every CONNECT to its `OpenF1Broker`."""

    @dataclass
    class Config:
        broker: Any = None

    async def authenticate(self, *, session: Any) -> bool:
        broker: OpenF1Broker = self.config.broker
        return broker._admit(session)

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Any) -> None:
        broker: OpenF1Broker = self.config.broker
        broker._release(client_session)


class _Broker(Broker):  # type: ignore[misc]
    """amqtt's broker, where what clients publish goes nowhere: the feed is the emulator's.

    This replaces amqtt's private topic check (amqtt is pinned), which otherwise asks every
    topic plugin about every delivery; a plugin would do the same at a quarter of the speed."""

    async def _topic_filtering(self, session: Any, topic: str, action: Any) -> bool:
        del session, topic
        return bool(action != Action.PUBLISH)

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        # amqtt leaves the socket of a client that left before its CONNECT (a port probe)
        # open; it returns only once the client is gone, so closing here is always safe.
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            writer.close()
