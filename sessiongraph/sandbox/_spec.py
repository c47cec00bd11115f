"""What each emulator module declares so the runner can start it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

__all__ = ["EmulatorSpec"]


@dataclass(frozen=True)
class EmulatorSpec:
    """How to build one emulator and what the gateway needs to reach it."""

    name: str
    create_app: Callable[[], web.Application]
    # Where the API lives below the server root, e.g. "/v1" for OpenF1.
    base_path: str
    # Gateway settings (without the SESSIONGRAPH_ prefix) pointing at an emulator served at `root`.
    gateway_env: Callable[[str], dict[str, str]]
