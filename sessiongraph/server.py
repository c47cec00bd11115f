"""uvicorn's httptools protocol with a deadline for a request's headers.

uvicorn times out idle kept-alive connections but waits forever for headers that never end.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Settings

__all__ = ["GuardedHttpToolsProtocol"]


@functools.cache
def _header_timeout() -> float:
    return Settings().header_read_timeout_seconds


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Closes a connection whose request headers are not complete in time."""

    header_timeout: float | None = None  # None: HEADER_READ_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        # Bytes of a new request after a response: its headers get a fresh deadline.
        if self._header_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        seconds = self.header_timeout if self.header_timeout is not None else _header_timeout()
        self._header_deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expire(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
