"""What each emulator module declares so the runner can start it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["Companion", "EmulatorSpec", "Service"]


@dataclass(frozen=True)
class Service:
    """What a companion server reports once it listens."""

    # Named URLs, shown beside the emulators' base URLs (e.g. {"openf1_mqtt": "mqtt://..."}).
    urls: dict[str, str]
    # More gateway settings (without the SESSIONGRAPH_ prefix).
    env: dict[str, str] = field(default_factory=dict)


# Starts a server beside an emulator: called with the emulator's app (already serving) and the
# host to listen on; entered once the emulator listens, exited before it stops.
Companion = Callable[[web.Application, str], AbstractAsyncContextManager[Service]]


@dataclass(frozen=True)
class EmulatorSpec:
    """How to build one emulator and what the gateway needs to reach it."""

    name: str
    # Called with the keyword options `start_sandbox` was given for this emulator, if any.
    create_app: Callable[..., web.Application]
    # Where the API lives below the server root, e.g. "/v1" for OpenF1.
    base_path: str
    # Gateway settings (without the SESSIONGRAPH_ prefix) pointing at an emulator served at `root`.
    gateway_env: Callable[[str], dict[str, str]]
    # Other servers that live and die with this emulator, e.g. OpenF1's MQTT broker.
    companions: tuple[Companion, ...] = ()
