"""Upstream providers: the only place that talks HTTP to OpenF1, Guidebook and SQL Race."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from ..cache import FallbackBackend, Freshness, ResponseCache, build_cache
from ..config import Settings
from ..errors import Forbidden, SessionGraphError, Unauthenticated, UpstreamNotConfigured
from ._auth import StaticHeader, TokenAuth
from ._http import RetryPolicy, UpstreamClient
from ._quota import DailyQuota, RedisQuotaStore
from ._ratelimit import RateLimiter, SharedRateLimiter
from ._resilience import CircuitBreaker, RetryBudget
from .guidebook import GuidebookProvider
from .openf1 import OpenF1Freshness, OpenF1Provider, openf1_token_fetcher
from .sqlrace import SqlRaceProvider, sqlrace_token_fetcher

__all__ = ["DailyQuota", "Providers", "UpstreamStatus", "build_providers"]


@dataclass
class UpstreamStatus:
    """What `/readyz` reports for one upstream (never credentials)."""

    name: str
    configured: bool
    base_url: str | None
    reason: str | None = None


@dataclass
class Providers:
    """One provider per configured upstream, sharing nothing but the settings."""

    openf1: OpenF1Provider
    cache: ResponseCache
    clients: list[UpstreamClient] = field(default_factory=list)
    statuses: dict[str, UpstreamStatus] = field(default_factory=dict)
    sqlrace: SqlRaceProvider | None = None
    guidebook: GuidebookProvider | None = None
    guidebook_keys: CallerKeys | None = None
    # Per request (see `for_request`): whether `guidebook` uses the caller's own key, and why
    # there is none when a caller key was refused or required.
    guidebook_caller: bool = False
    guidebook_refusal: SessionGraphError | None = None
    # Guidebook's daily request quota (None: not configured, or GUIDEBOOK_DAILY_QUOTA=0).
    guidebook_quota: DailyQuota | None = None

    def for_request(self, headers: Mapping[str, str]) -> Providers:
        """The providers a request uses: Guidebook with the caller's key if it sent one."""
        if self.guidebook_keys is None:
            return self
        return self.guidebook_keys.providers_for(self, headers.get("x-guidebook-api-key"))

    def not_configured(self, name: str) -> SessionGraphError:
        """The coded error for a field whose upstream has no URL or credentials."""
        if name == "guidebook" and self.guidebook_refusal is not None:
            return self.guidebook_refusal
        status = self.statuses.get(name)
        reason = status.reason if status and status.reason else "it has no URL or credentials"
        return UpstreamNotConfigured(name, f"{name} is not configured: {reason}")

    async def start(self) -> None:
        for client in self.clients:
            await client.start()

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await self.cache.close()


def _client(
    settings: Settings, cache: ResponseCache, name: str, base_url: str, **options: object
) -> UpstreamClient:
    ttl: float = getattr(settings, f"cache_ttl_{name}_seconds", 0.0)
    return UpstreamClient(
        name,
        base_url,
        timeout=settings.timeout_for(name),
        retry=RetryPolicy(
            attempts=settings.retry_attempts, budget_seconds=settings.retry_budget_seconds
        ),
        concurrency=settings.upstream_concurrency,
        cache=cache,
        freshness=Freshness(ttl, settings.cache_stale_seconds),
        breaker=CircuitBreaker(
            window_seconds=settings.breaker_window_seconds,
            min_attempts=settings.breaker_min_requests,
            failure_ratio=settings.breaker_failure_ratio,
            open_seconds=settings.breaker_open_seconds,
        ),
        retry_budget=RetryBudget(ratio=settings.retry_budget_ratio),
        **options,  # type: ignore[arg-type]
    )


def _rate_limiter(
    settings: Settings, cache: ResponseCache, name: str, per_second: float, per_minute: float
) -> RateLimiter:
    """Shared through Redis when the cache is in Redis, so N workers keep one budget."""
    backend = cache.backend
    if isinstance(backend, FallbackBackend):
        return SharedRateLimiter(
            backend.primary.client,
            name,
            per_second,
            per_minute,
            hold_seconds=settings.timeout_for(name) + 1,
        )
    return RateLimiter(per_second, per_minute)


def build_providers(settings: Settings) -> Providers:
    cache = build_cache(settings)
    openf1_client = _client(
        settings,
        cache,
        "openf1",
        settings.openf1_url,
        rate_limiter=_rate_limiter(
            settings,
            cache,
            "openf1",
            settings.openf1_rate_per_second,
            settings.openf1_rate_per_minute,
        ),
    )
    if settings.openf1_username and settings.openf1_password:
        parts = urlsplit(settings.openf1_url)
        # The token endpoint lives at the server root, beside /v1.
        token_url = f"{parts.scheme}://{parts.netloc}/token"
        openf1_client.auth = TokenAuth(
            openf1_token_fetcher(
                openf1_client,
                token_url,
                settings.openf1_username,
                settings.openf1_password.get_secret_value(),
            )
        )
    providers = Providers(
        openf1=OpenF1Provider(
            openf1_client,
            max_url_length=settings.openf1_max_url_length,
            catalogue=settings.openf1_catalogue,
            freshness=OpenF1Freshness(
                settled_seconds=settings.cache_ttl_openf1_settled_seconds,
                recent_seconds=settings.cache_ttl_openf1_recent_seconds,
                latest_seconds=settings.cache_ttl_openf1_latest_seconds,
                stale_seconds=settings.cache_stale_seconds,
            ),
        ),
        cache=cache,
        clients=[openf1_client],
    )
    providers.statuses["openf1"] = UpstreamStatus("openf1", True, settings.openf1_url)
    guidebook = _guidebook(settings, cache)
    server_key = settings.guidebook_api_key is not None
    if guidebook is not None:
        providers.clients.append(guidebook.client)
        providers.guidebook = guidebook if server_key else None
        providers.guidebook_quota = guidebook.client.quota
        providers.guidebook_keys = CallerKeys(settings.guidebook_client_keys, guidebook)
    if server_key:
        reason = None
    elif guidebook is not None:
        reason = "SESSIONGRAPH_GUIDEBOOK_API_KEY is not set; send your own in X-Guidebook-Api-Key"
    else:
        reason = "SESSIONGRAPH_GUIDEBOOK_API_KEY is not set"
    providers.statuses["guidebook"] = UpstreamStatus(
        "guidebook", server_key, settings.guidebook_url, reason
    )
    providers.sqlrace = _sqlrace(settings, cache)
    if providers.sqlrace is not None:
        providers.clients.append(providers.sqlrace.client)
    providers.statuses["sqlrace"] = UpstreamStatus(
        "sqlrace", providers.sqlrace is not None, settings.sqlrace_url, _sqlrace_missing(settings)
    )
    return providers


def _sqlrace_missing(settings: Settings) -> str | None:
    if not settings.sqlrace_url:
        return "SESSIONGRAPH_SQLRACE_URL is not set"
    if not (settings.sqlrace_username and settings.sqlrace_password):
        return "SESSIONGRAPH_SQLRACE_USERNAME and SESSIONGRAPH_SQLRACE_PASSWORD must be set"
    return None


def _sqlrace(settings: Settings, cache: ResponseCache) -> SqlRaceProvider | None:
    """Only with a URL and both credentials: the API refuses every request without a token."""
    if not (settings.sqlrace_url and settings.sqlrace_username and settings.sqlrace_password):
        return None
    username = settings.sqlrace_username
    client = _client(
        settings,
        cache,
        "sqlrace",
        f"{settings.sqlrace_url}/{settings.sqlrace_api_path}",
        # Reads are private to an account: a shared cache keeps each account's apart.
        cache_scope=hashlib.sha256(username.encode()).hexdigest()[:16],
    )
    client.auth = TokenAuth(
        sqlrace_token_fetcher(
            client, settings.sqlrace_url, username, settings.sqlrace_password.get_secret_value()
        ),
        renew_before_seconds=settings.sqlrace_token_renew_seconds,
    )
    return SqlRaceProvider(
        client,
        page_size=settings.sqlrace_page_size,
        first_page=settings.sqlrace_first_page,
        max_pages=settings.sqlrace_max_pages,
        state_names=settings.sqlrace_state_names,
        default_time_zone=settings.sqlrace_default_time_zone,
        expose_infrastructure=settings.sqlrace_expose_infrastructure,
        concurrency=settings.sqlrace_concurrency,
        single_session_route=settings.sqlrace_single_session_route,
        samples_page_size=settings.sqlrace_samples_page_size,
        max_samples=settings.sqlrace_max_samples,
    )


def _key_scope(key: str) -> str:
    # Reads are private to the key's account: a shared cache keeps each account's apart.
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _guidebook(settings: Settings, cache: ResponseCache) -> GuidebookProvider | None:
    """With the server's API key (every Open API call needs `Authorization: JWT <key>`), or
    without one when callers may bring their own."""
    if settings.guidebook_api_key is None and settings.guidebook_client_keys == "off":
        return None
    key = settings.guidebook_api_key.get_secret_value() if settings.guidebook_api_key else None
    scope = _key_scope(key) if key else ""
    client = _client(
        settings,
        cache,
        "guidebook",
        settings.guidebook_url,
        cache_scope=scope,
        auth=StaticHeader(f"JWT {key}") if key else None,
        quota=_daily_quota(settings, cache, "guidebook", scope),
    )
    return GuidebookProvider(client, page_size=settings.guidebook_page_size)


# A caller key is at most this long and printable ASCII without spaces (Guidebook's are JWTs).
_MAX_KEY_LENGTH = 4096
_KEY_VIEWS = 1024


class CallerKeys:
    """GUIDEBOOK_CLIENT_KEYS: each request's Guidebook provider, with its caller's key or the
    server's. A caller's key is sent only as `Authorization: JWT <key>` to the configured
    host; it is never logged nor put in an error."""

    def __init__(self, mode: str, base: GuidebookProvider) -> None:
        self.mode = mode
        self.base = base
        # Views by key hash, so a busy caller does not rebuild one per request.
        self._views: OrderedDict[str, GuidebookProvider] = OrderedDict()

    def providers_for(self, providers: Providers, key: str | None) -> Providers:
        if key is None:
            if self.mode == "require":
                return replace(
                    providers,
                    guidebook=None,
                    guidebook_refusal=Unauthenticated(
                        "guidebook fields need your Guidebook API key in an "
                        "`X-Guidebook-Api-Key` header (GUIDEBOOK_CLIENT_KEYS=require)"
                    ),
                )
            return providers
        if self.mode == "off":
            return replace(
                providers,
                guidebook=None,
                guidebook_refusal=Forbidden(
                    "this gateway does not take callers' Guidebook keys "
                    "(GUIDEBOOK_CLIENT_KEYS=off); send the request without X-Guidebook-Api-Key"
                ),
            )
        key = key.strip()
        if not key or len(key) > _MAX_KEY_LENGTH or not all("!" <= c <= "~" for c in key):
            return replace(
                providers,
                guidebook=None,
                guidebook_refusal=Unauthenticated(
                    "the X-Guidebook-Api-Key header does not hold a Guidebook API key"
                ),
            )
        return replace(providers, guidebook=self._view(key), guidebook_caller=True)

    def _view(self, key: str) -> GuidebookProvider:
        scope = _key_scope(key)
        found = self._views.get(scope)
        if found is None:
            client = self.base.client.with_credentials(
                StaticHeader(f"JWT {key}"), scope, "the key in X-Guidebook-Api-Key"
            )
            found = self._views[scope] = self.base.with_client(client)
            while len(self._views) > _KEY_VIEWS:
                self._views.popitem(last=False)
        else:
            self._views.move_to_end(scope)
        return found


def _daily_quota(
    settings: Settings, cache: ResponseCache, name: str, server_scope: str
) -> DailyQuota | None:
    """One per process, whatever the keys; counted in Redis when the cache is in Redis, so
    every worker and machine spends from the same count (on the cache's own connection)."""
    limit = settings.guidebook_daily_quota
    if limit == 0:
        return None
    backend = cache.backend
    shared = (
        RedisQuotaStore(backend.primary.client, name)
        if isinstance(backend, FallbackBackend)
        else None
    )
    return DailyQuota(name, limit, shared=shared, server_scope=server_scope)
