"""Upstream credentials: static header keys and password-grant bearer tokens with caching."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from ..errors import UpstreamAuthFailed, UpstreamRejected, UpstreamUnavailable

if TYPE_CHECKING:
    from yarl import URL

    from ._http import UpstreamClient

__all__ = [
    "Authenticator",
    "BearerToken",
    "StaticHeader",
    "TokenAuth",
    "TokenFetcher",
    "password_grant_fetcher",
]


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


def password_grant_fetcher(
    client: UpstreamClient,
    token_url: URL,
    form: Mapping[str, str],
    *,
    default_lifetime: float = 3600,
) -> TokenFetcher:
    """A fetcher that POSTs `form` to an OAuth-style token endpoint and reads `access_token`
    and `expires_in` (a number or a numeric string; `default_lifetime` when absent)."""

    async def fetch() -> BearerToken:
        response = await client.request("POST", "", url=token_url, data=form, authenticate=False)
        if response.status != 200:
            if _is_invalid_grant(response.body):
                # OAuth servers refuse wrong credentials with 400 invalid_grant (RFC 6749 5.2).
                raise UpstreamAuthFailed(
                    client.name, f"{client.name} refused our credentials", status=response.status
                )
            raise client.error_for(response)
        try:
            payload = response.json()
        except orjson.JSONDecodeError as exc:
            # A cut or garbled body is a transport fault, worth retrying, not a contract breach.
            raise UpstreamUnavailable(
                client.name, f"{client.name} sent a token response that is not valid JSON"
            ) from exc
        try:
            lifetime = float(payload.get("expires_in", default_lifetime))
            token = str(payload["access_token"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UpstreamRejected(
                client.name, f"{client.name} sent an unreadable token response"
            ) from exc
        return BearerToken(token, time.monotonic() + lifetime)

    return fetch


def _is_invalid_grant(body: bytes) -> bool:
    return b'"invalid_grant"' in body
