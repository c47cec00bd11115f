"""One upstream's HTTP client: a shared aiohttp session, timeouts, rate limit, auth and retries."""

from __future__ import annotations

import asyncio
import copy
import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import aiohttp
import orjson
from yarl import URL

from .. import tracing
from ..cache import Freshness, Policy, ResponseCache, Stored, spoil_trace
from ..errors import (
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamQuotaSpent,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..metrics import BREAKER_STATE, UPSTREAM_DURATION, UPSTREAM_REQUESTS
from ._auth import Authenticator
from ._quota import DailyQuota
from ._ratelimit import Place, RateLimiter
from ._resilience import BreakerState, CircuitBreaker, RetryBudget

__all__ = [
    "RETRYABLE_STATUSES",
    "FilePart",
    "RetryPolicy",
    "UpstreamClient",
    "UpstreamResponse",
]

logger = logging.getLogger("sessiongraph.upstream")

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How reads are retried: attempts after the first, and a wall-clock budget for all waits.

    `timeouts`: whether a timed-out attempt is retried too (only for look-ups that must not
    give up early, such as finding out whether a write whose answer was lost happened).
    """

    attempts: int = 3
    budget_seconds: float = 20.0
    base_delay: float = 0.2
    max_delay: float = 5.0
    timeouts: bool = False

    def backoff(self, retry_number: int) -> float:
        # Full jitter keeps many gateways from retrying in lockstep after a shared outage.
        ceiling = min(self.max_delay, self.base_delay * 2**retry_number)
        return random.uniform(0, ceiling)


_UNDECODED: Any = object()


@dataclass(frozen=True)
class FilePart:
    """A file sent as one part of a multipart body, streamed from `file` (rewound before
    each attempt, so a re-authenticated resend carries it whole)."""

    name: str
    file: BinaryIO
    filename: str
    content_type: str


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    # The body already decoded by `UpstreamClient.get`, so providers do not parse it twice.
    decoded: Any = field(default=_UNDECODED, compare=False, repr=False)
    # Bytes to a value; raises `orjson.JSONDecodeError` for a body that is not JSON.
    decoder: Callable[[bytes], Any] = field(default=orjson.loads, compare=False, repr=False)
    # For reads through the cache: when the answer was fetched and until when it is fresh.
    stored_at: float = field(default=0.0, compare=False)
    fresh_until: float = field(default=0.0, compare=False)

    def json(self) -> Any:
        """The decoded body (raises `orjson.JSONDecodeError` if it is not JSON)."""
        if self.decoded is _UNDECODED:
            object.__setattr__(self, "decoded", self.decoder(self.body))
        return self.decoded

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class UpstreamClient:
    """Talks to one upstream; opened and closed by the application lifespan."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout: float,
        retry: RetryPolicy,
        rate_limiter: RateLimiter | None = None,
        concurrency: int = 32,
        auth: Authenticator | None = None,
        cache: ResponseCache | None = None,
        cache_scope: str = "",
        freshness: Freshness | None = None,
        breaker: CircuitBreaker | None = None,
        retry_budget: RetryBudget | None = None,
        quota: DailyQuota | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self.rate_limiter = rate_limiter or RateLimiter(0, 0)
        self.auth = auth or Authenticator()
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        # A view made by `with_credentials` uses its root's connections.
        self._root = self
        # Whose credentials an auth refusal is about, as its message says.
        self.credentials = "our credentials"
        self.requests_sent = 0
        # Coalescing of identical reads happens even when no cache backend is configured.
        self.cache = cache or ResponseCache(None)
        # Distinguishes cached reads made with different credentials (private data).
        self.cache_scope = cache_scope
        self.freshness = freshness
        self.breaker = breaker or CircuitBreaker()
        self.retry_budget = retry_budget or RetryBudget()
        # The upstream's daily request quota, counted per `cache_scope` (the key's hash).
        self.quota = quota

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._concurrency, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Accept": "application/json", "User-Agent": "sessiongraph/0.1"},
                raise_for_status=False,
                auto_decompress=True,
            )
            # aiohttp silently resends an idempotent request once when a kept-alive connection
            # drops; our RetryPolicy must be the only thing deciding how often an upstream is hit.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        session = self._root._session
        if session is None:
            raise UpstreamUnavailable(self.name, f"{self.name} client is not started")
        return session

    def with_credentials(
        self, auth: Authenticator, cache_scope: str, credentials: str
    ) -> UpstreamClient:
        """The same upstream with another account's credentials (named `credentials` in
        errors): the connections, rate limit, breaker and cache are shared; what it reads is
        cached apart (its own `cache_scope`)."""
        view = copy.copy(self)
        view.auth = auth
        view.cache_scope = cache_scope
        view.credentials = credentials
        return view

    def url(self, path: str, query: str = "") -> URL:
        """`path` below the base URL and a query string the caller has already encoded."""
        raw = f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url
        if query:
            raw = f"{raw}?{query}"
        # encoded=True: the providers build exact query strings; yarl must not re-encode them.
        return URL(raw, encoded=True)

    async def get(
        self,
        path: str,
        query: str = "",
        *,
        policy: Policy | None = None,
        tags: tuple[str, ...] = (),
        decoder: Callable[[bytes], Any] = orjson.loads,
    ) -> UpstreamResponse:
        """A read: cached per `policy` (default: 200s for the client's freshness), coalesced
        with identical reads in flight, retried on 429, 502-504 and connection errors.
        The cache holds bytes; `decoder` turns them into the value `json()` returns.

        A 2xx body that is not JSON raises UPSTREAM_UNAVAILABLE before it reaches the cache:
        a corrupt answer is never stored nor handed to the reads coalesced with this one.
        The returned response carries the decoded body (`json()` does not parse it again).
        """
        loaded: list[UpstreamResponse] = []

        async def load() -> Stored:
            response = replace(
                await self.request("GET", path, query=query, retry=True), decoder=decoder
            )
            if 200 <= response.status < 300 and response.status != 204:
                self._decode(response)
            loaded.append(response)
            return Stored(response.status, _cacheable_headers(response.headers), response.body)

        stored = await self.cache.read(
            self.name, self.cache_key(path, query), load, policy or self.default_policy, tags
        )
        decoded = loaded[0].decoded if loaded and loaded[0].body is stored.body else _UNDECODED
        return UpstreamResponse(
            stored.status,
            stored.headers,
            stored.body,
            decoded,
            decoder,
            stored_at=stored.stored_at,
            fresh_until=stored.fresh_until,
        )

    def _decode(self, response: UpstreamResponse) -> Any:
        try:
            return response.json()
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnavailable(
                self.name,
                f"{self.name} sent a response that is not valid JSON",
                status=response.status,
            ) from exc

    def cache_key(self, path: str, query: str = "") -> str:
        """GET, the URL with its parameters sorted, and whose credentials asked."""
        params = "&".join(sorted(query.split("&"))) if query else ""
        return f"{self.name}|{self.cache_scope}|GET {self.url(path)}?{params}"

    def default_policy(self, stored: Stored) -> Freshness | None:
        return self.freshness if stored.status == 200 else None

    async def invalidate(self, tags: tuple[str, ...]) -> None:
        """Forget cached reads tagged with any of `tags` (after a write that changed them)."""
        await self.cache.invalidate(self.name, tags)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: tuple[FilePart, ...] = (),
        retry: bool = False,
        url: URL | None = None,
        authenticate: bool = True,
        retry_policy: RetryPolicy | None = None,
    ) -> UpstreamResponse:
        """Send one request; only `retry=True` requests (reads) are ever sent twice.

        `retry_policy` replaces the client's for this request and is not charged to the
        shared retry budget (a look-up that must get its own chance, whatever else failed).
        Returns any response the caller must interpret (2xx, 4xx other than 401/429);
        raises the coded upstream error for the rest once retries are spent. The circuit
        breaker hears one outcome per call, after its retries, not one per attempt.
        """
        if method != "GET":
            spoil_trace()  # a response that wrote upstream must never be replayed
        allowed = self.breaker.allow()
        BREAKER_STATE.labels(self.name).set(self.breaker.state.value)
        if not allowed:
            raise UpstreamUnavailable(
                self.name,
                f"{self.name} is failing; requests are paused for a while",
                reason="CIRCUIT_OPEN",
                retryAfter=round(self.breaker.retry_after(), 1),
            )
        healthy: bool | None = None
        try:
            response = await self._attempts(
                method,
                url if url is not None else self.url(path, query),
                json,
                data,
                files,
                retry=retry,
                authenticate=authenticate,
                policy=retry_policy,
            )
            # A 429 says nothing about the upstream's health; 5xx do.
            healthy = response.status < 500
            return response
        except _AuthStepFailed as failed:
            # The token request was a request of its own and told the breaker already.
            raise failed.error from failed.error.__cause__
        except UpstreamQuotaSpent:
            raise  # never sent: nothing to tell the breaker
        except UpstreamError as exc:
            healthy = not _unhealthy(exc)
            raise
        finally:
            self.breaker.record(healthy)
            BREAKER_STATE.labels(self.name).set(self.breaker.state.value)

    async def _attempts(
        self,
        method: str,
        target: URL,
        json: Any,
        data: Mapping[str, str] | None,
        files: tuple[FilePart, ...],
        *,
        retry: bool,
        authenticate: bool,
        policy: RetryPolicy | None,
    ) -> UpstreamResponse:
        rules = policy or self.retry
        budgeted = policy is None
        deadline = time.monotonic() + rules.budget_seconds
        retries = 0
        reauthenticated = False
        if budgeted:
            self.retry_budget.deposit()
        while True:
            try:
                header = await self.auth.header() if authenticate else None
            except UpstreamError as exc:
                raise _AuthStepFailed(exc) from exc
            if self.quota is not None:
                # Each attempt is a request the upstream counts; none goes once they are spent.
                await self.quota.spend(self.cache_scope)
            try:
                response = await self._send_once(method, target, header, json, data, files)
            except UpstreamError as exc:
                if retry and self._may_retry(exc, retries, deadline, None, rules, budgeted):
                    await asyncio.sleep(rules.backoff(retries))
                    retries += 1
                    continue
                raise
            if response.status == 401 and header is not None and not reauthenticated:
                reauthenticated = True
                if await self.auth.rejected(header):
                    continue
            if response.status == 429 and self.quota is not None:
                refused = await self.quota.upstream_refused(self.cache_scope, response.retry_after)
                wait = response.retry_after
                # Only a Retry-After is worth waiting for: without one the key is refused
                # until the day ends, and another attempt would not even be sent.
                if (
                    retry
                    and wait is not None
                    and self._may_retry(refused, retries, deadline, wait, rules, budgeted)
                ):
                    await asyncio.sleep(wait)
                    retries += 1
                    continue
                raise refused
            if response.status in RETRYABLE_STATUSES and retry:
                wait = response.retry_after
                error = self._status_error(response)
                if self._may_retry(error, retries, deadline, wait, rules, budgeted):
                    await asyncio.sleep(wait if wait is not None else rules.backoff(retries))
                    retries += 1
                    continue
                raise error
            if response.status in RETRYABLE_STATUSES or response.status >= 500:
                raise self._status_error(response)
            if response.status in (401, 403):
                raise self._status_error(response)
            return response

    def _may_retry(
        self,
        error: UpstreamError,
        retries: int,
        deadline: float,
        wait: float | None,
        rules: RetryPolicy,
        budgeted: bool,
    ) -> bool:
        if isinstance(error, UpstreamTimeout) and not rules.timeouts:
            return False
        if retries >= rules.attempts or self.breaker.state is BreakerState.OPEN:
            return False
        expected = wait if wait is not None else rules.backoff(retries)
        if time.monotonic() + expected >= deadline:
            return False
        return self.retry_budget.withdraw() if budgeted else True

    async def _send_once(
        self,
        method: str,
        url: URL,
        header: str | None,
        json: Any,
        data: Mapping[str, str] | None,
        files: tuple[FilePart, ...] = (),
    ) -> UpstreamResponse:
        headers = {"Authorization": header} if header else {}
        tracing.inject_trace_context(headers)
        body: bytes | None = None
        if json is not None:
            body = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        async with self.rate_limiter.hold() as place:
            self._root.requests_sent += 1
            started = time.monotonic()
            with tracing.span(
                f"{self.name} {method}",
                client=True,
                **{"http.request.method": method, "url.path": url.path, "upstream": self.name},
            ) as current:
                result = await self._transfer(
                    method, url, headers, body or _form(data, files), started, place
                )
                if current is not None:
                    current.set_attribute("http.response.status_code", result.status)
        return result

    async def _transfer(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: bytes | aiohttp.FormData | Mapping[str, str] | None,
        started: float,
        place: Place,
    ) -> UpstreamResponse:
        try:
            async with self.session.request(method, url, headers=headers, data=body) as response:
                place.answered()
                payload = await response.read()
                # Title-cased names, so `Retry-After` is found however the server spelt it.
                headers = {name.title(): value for name, value in response.headers.items()}
                result = UpstreamResponse(response.status, headers, payload)
        except TimeoutError as exc:
            self._observe(method, "timeout", started)
            raise UpstreamTimeout(
                self.name, f"{self.name} did not answer within {self.timeout:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            self._observe(method, "connection_error", started)
            raise UpstreamUnavailable(
                self.name, f"{self.name} could not be reached ({type(exc).__name__})"
            ) from exc
        self._observe(method, str(result.status), started)
        logger.debug(
            "upstream request",
            extra={
                "upstream": self.name,
                "method": method,
                "path": url.path,
                "status": result.status,
                "ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return result

    def _observe(self, method: str, status: str, started: float) -> None:
        UPSTREAM_REQUESTS.labels(self.name, method, status).inc()
        UPSTREAM_DURATION.labels(self.name).observe(time.monotonic() - started)

    def _status_error(self, response: UpstreamResponse) -> UpstreamError:
        status = response.status
        detail = _detail(response)
        if status == 429:
            return UpstreamRateLimited(
                self.name,
                f"{self.name} is rate limiting us; try again later",
                retry_after=response.retry_after,
            )
        if status in (401, 403):
            return UpstreamAuthFailed(
                self.name, f"{self.name} refused {self.credentials}: {detail}", status=status
            )
        if status >= 500:
            return UpstreamUnavailable(
                self.name, f"{self.name} failed with HTTP {status}", status=status
            )
        return UpstreamRejected(
            self.name, f"{self.name} rejected the request: {detail}", status=status
        )

    def error_for(self, response: UpstreamResponse) -> UpstreamError:
        """The coded error for a response the caller could not accept."""
        return self._status_error(response)


class _AuthStepFailed(Exception):
    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error


def _form(
    data: Mapping[str, str] | None, files: tuple[FilePart, ...]
) -> aiohttp.FormData | Mapping[str, str] | None:
    if not files:
        return data
    form = aiohttp.FormData(dict(data or {}))
    for part in files:
        part.file.seek(0)
        form.add_field(part.name, part.file, filename=part.filename, content_type=part.content_type)
    return form


def _unhealthy(error: UpstreamError) -> bool:
    """Whether a failed request counts against the upstream's health (the breaker's view)."""
    if error.extra.get("reason") == "CIRCUIT_OPEN":
        return False
    if isinstance(error, UpstreamTimeout):
        return True
    return isinstance(error, UpstreamUnavailable) and (error.status is None or error.status >= 500)


def _cacheable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    keep = ("Content-Type", "Retry-After", "Content-Disposition")
    return {name: headers[name] for name in keep if name in headers}


def _detail(response: UpstreamResponse) -> str:
    """A short, safe description of an error body (DRF `detail`, else the status)."""
    try:
        payload = response.json()
    except orjson.JSONDecodeError:
        return f"HTTP {response.status}"
    if isinstance(payload, dict):
        for key in ("detail", "message", "error", "Message", "error_description"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value[:300]
    return f"HTTP {response.status}"
