"""Upstream credentials: static header keys and password-grant bearer tokens with caching."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Authenticator", "BearerToken", "StaticHeader", "TokenAuth", "TokenFetcher"]


class Authenticator:
    """Supplies the Authorization header for upstream requests."""

    async def header(self) -> str | None:
        return None

    async def rejected(self, header: str) -> bool:
        """The upstream refused `header`; return True if a fresh credential is worth a retry."""
        return False


class StaticHeader(Authenticator):
    """A fixed header such as Guidebook's `JWT <key>`; a refusal is final."""

    def __init__(self, value: str) -> None:
        self._value = value

    async def header(self) -> str | None:
        return self._value


@dataclass(frozen=True)
class BearerToken:
    value: str
    expires_at: float


TokenFetcher = Callable[[], Awaitable[BearerToken]]


class TokenAuth(Authenticator):
    """A token fetched once, shared by concurrent requests, renewed shortly before it expires."""

    def __init__(self, fetch: TokenFetcher, *, renew_before_seconds: float = 60) -> None:
        self._fetch = fetch
        self._renew_before = renew_before_seconds
        self._token: BearerToken | None = None
        self._pending: asyncio.Future[BearerToken] | None = None
        self.fetches = 0

    async def header(self) -> str | None:
        token = self._token
        if token is None or time.monotonic() >= token.expires_at - self._renew_before:
            token = await self._renew()
        return f"Bearer {token.value}"

    async def rejected(self, header: str) -> bool:
        # Only drop the token that failed: a concurrent request may already hold a newer one.
        if self._token is not None and header == f"Bearer {self._token.value}":
            self._token = None
        return True

    async def _renew(self) -> BearerToken:
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._fetch_once())
        pending = self._pending
        # shield: one caller's cancellation must not cancel the fetch the others wait on.
        return await asyncio.shield(pending)

    async def _fetch_once(self) -> BearerToken:
        try:
            self.fetches += 1
            self._token = await self._fetch()
            return self._token
        finally:
            self._pending = None
