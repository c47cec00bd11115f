"""Gateway configuration from `SESSIONGRAPH_*` environment variables (see the README's table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]

OPENF1_PUBLIC_URL = "https://api.openf1.org/v1"
GUIDEBOOK_PUBLIC_URL = "https://builder.guidebook.com/open-api/v1"


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Everything an operator can set; secrets are `SecretStr` so they never print."""

    model_config = SettingsConfigDict(env_prefix="SESSIONGRAPH_", extra="ignore")

    # OpenF1 is public, so it is always configured (the public URL unless told otherwise).
    openf1_url: str = OPENF1_PUBLIC_URL
    openf1_username: str | None = None
    openf1_password: SecretStr | None = None
    openf1_rate_per_second: float = Field(default=3, ge=0)
    openf1_rate_per_minute: float = Field(default=30, ge=0)
    openf1_timeout_seconds: float | None = Field(default=None, gt=0)

    guidebook_url: str = GUIDEBOOK_PUBLIC_URL
    guidebook_api_key: SecretStr | None = None
    guidebook_timeout_seconds: float | None = Field(default=None, gt=0)
    # `page_size` sent on Guidebook lists. Only documented for one endpoint (max 500), so the
    # provider still follows `next` and learns the real page size when the upstream caps it.
    guidebook_page_size: int = Field(default=100, ge=1, le=500)
    # Whether a request may bring its own Guidebook key in X-Guidebook-Api-Key (then Guidebook
    # authorizes its writes, and its reads are cached for that key alone).
    guidebook_client_keys: Literal["off", "allow", "require"] = "allow"
    # The security token Guidebook Builder shows for our webhook; without it (or empty)
    # `/webhooks/guidebook` does not exist.
    guidebook_webhook_token: SecretStr | None = None
    # Requests Guidebook allows a key per UTC day (its docs say 4,000 in one version and
    # 10,000 in another; the lower one is the safe default). 0 turns the tracking off.
    guidebook_daily_quota: int = Field(default=4000, ge=0)

    sqlrace_url: str | None = None
    sqlrace_api_path: str = "api"
    sqlrace_username: str | None = None
    sqlrace_password: SecretStr | None = None
    sqlrace_timeout_seconds: float | None = Field(default=None, gt=0)
    # The reference leaves these open (sqlrace.md §3, §5), so they are settings, not guesses.
    # `pageSize` sent on session lists: the docs say 50 in one place and 200 in another; keep it
    # at or below the server's maximum, or a capped page would look like the last one.
    sqlrace_page_size: int = Field(default=50, ge=1, le=1000)
    # Index of the first page: documented as 0, while the docs' own example uses page=1.
    sqlrace_first_page: int = Field(default=0, ge=0, le=1)
    # Stop paging (with an error) after this many full pages: a server ignoring `page` loops.
    sqlrace_max_pages: int = Field(default=1000, ge=1)
    # Integer `State` values as names, e.g. "0=Created,2=Historical" or JSON {"2": "Historical"};
    # the vendor never published the numbers, so integers without an entry are exposed raw.
    sqlrace_state_names: Annotated[dict[int, str], NoDecode] = Field(default_factory=dict)
    # Time zone for sessions that carry no `TimeZone` (the Metadata-page shape).
    sqlrace_default_time_zone: str = "UTC"
    # ServerName and RootPath describe internal infrastructure: null unless this is set.
    sqlrace_expose_infrastructure: bool = False
    # Per-session requests (details, laps, parameters) in flight at once towards SQL Race.
    sqlrace_concurrency: int = Field(default=8, ge=1)
    # Samples: pages of this many, and at most this many per parameter in one answer.
    sqlrace_samples_page_size: int = Field(default=50_000, ge=1, le=1_000_000)
    sqlrace_max_samples: int = Field(default=2_000_000, ge=1)
    # Whether the server answers GET .../sessions/{key} (not in the reference); without it a
    # session is found by paging its connection's list.
    sqlrace_single_session_route: bool = False
    # Renew the bearer token this long before its `expires_in` runs out.
    sqlrace_token_renew_seconds: float = Field(default=60, ge=0)

    api_token_hashes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Queries are open by default; when true they need the same bearer token as mutations.
    require_token_for_queries: bool = False

    upstream_timeout_seconds: float = Field(default=10, gt=0)
    retry_attempts: int = Field(default=3, ge=0, le=10)
    # Upper bound on the time one upstream read may spend in retries and Retry-After waits.
    retry_budget_seconds: float = Field(default=20, ge=0)
    # Circuit breaker per upstream: opens when BREAKER_FAILURE_RATIO of at least
    # BREAKER_MIN_REQUESTS attempts in BREAKER_WINDOW_SECONDS failed; probes after OPEN_SECONDS.
    breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_min_requests: int = Field(default=10, ge=1)
    breaker_window_seconds: float = Field(default=30, gt=0)
    breaker_open_seconds: float = Field(default=15, gt=0)
    # Retries may add at most this fraction of first attempts (plus one per second).
    retry_budget_ratio: float = Field(default=0.2, ge=0)
    # Upstream requests one gateway process keeps in flight per upstream.
    upstream_concurrency: int = Field(default=32, ge=1)
    # Longest URL the OpenF1 loaders build when they batch keys into one request.
    # Meetings and sessions as a local catalogue (two upstream requests a refresh).
    openf1_catalogue: bool = True
    # OpenF1's live broker, used only with an OpenF1 account (the token is the password).
    openf1_mqtt_url: str = "mqtts://mqtt.openf1.org:8883"
    # Poll interval of a live topic that has no push feed (or while the broker is away).
    live_poll_seconds: float = Field(default=4, gt=0, le=3600)
    # Subscriptions per WebSocket/SSE connection, and live connections per process.
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    max_live_connections: int = Field(default=5000, ge=1)
    openf1_max_url_length: int = Field(default=2000, ge=200)

    max_query_depth: int = Field(default=10, ge=1)
    max_query_tokens: int = Field(default=2000, ge=10)
    max_aliases: int = Field(default=30, ge=1)
    # Estimated fields a query may fetch: lists multiply by `first` or COST_DEFAULT_LIST_SIZE.
    max_query_cost: int = Field(default=50_000, ge=0)
    cost_default_list_size: int = Field(default=20, ge=1)
    # Objects one HTTP request may fetch by id (`nodes` ids, `_entities` representations,
    # `node` and the other by-key root fields), over its aliases and batched operations.
    max_lookups_per_request: int = Field(default=200, ge=1)
    # Longest string argument of a query (filters, keys, cursors become upstream URLs).
    max_string_argument_length: int = Field(default=1000, ge=16)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # The largest image a mutation may upload (a multipart request may be this much larger).
    max_upload_bytes: int = Field(default=5_000_000, ge=1024)
    # A request's headers, then its body, must arrive within these (slow clients hold sockets).
    header_read_timeout_seconds: float = Field(default=10, gt=0)
    body_read_timeout_seconds: float = Field(default=10, gt=0)
    # GraphQL query batching (several operations in one HTTP request).
    query_batching: bool = True
    max_batch_operations: int = Field(default=10, ge=1, le=100)
    # DataLoader batching of upstream reads; off only to measure what it saves.
    dataloader_batching: bool = True

    cache_url: str = "memory://"
    cache_max_entries: int = Field(default=10_000, ge=1)
    cache_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # OpenF1 meetings/sessions that ended over an hour ago change once a day at most.
    cache_ttl_openf1_settled_seconds: float = Field(default=6 * 3600, ge=0)
    cache_ttl_openf1_recent_seconds: float = Field(default=300, ge=0)
    cache_ttl_openf1_latest_seconds: float = Field(default=60, ge=0)
    cache_ttl_guidebook_seconds: float = Field(default=30, ge=0)
    cache_ttl_sqlrace_seconds: float = Field(default=30, ge=0)
    # After its TTL an entry is still served for this long while one refresh runs...
    cache_stale_seconds: float = Field(default=300, ge=0)
    # ...and for this long beyond that, with a warning, when the upstream fails.
    cache_grace_seconds: float = Field(default=86400, ge=0)
    # The longest `max-age` a query answer advertises to browsers and CDNs (0: never cached).
    http_max_age_seconds: int = Field(default=300, ge=0)
    # Apollo's automatic persisted queries, kept in the cache backend (shared through Redis).
    persisted_queries: bool = True
    persisted_queries_max_entries: int = Field(default=10_000, ge=1)
    # Trusted documents: an Apollo manifest or a `{hash: document}` map; with `..._ONLY`
    # every other document is refused.
    persisted_documents_file: Path | None = None
    persisted_documents_only: bool = False
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # How long browsers may reuse a preflight's answer (Chromium caps it at 2 h).
    cors_max_age_seconds: int = Field(default=7200, ge=0)
    # Refuse GraphQL requests a browser could send cross-site without a preflight (Apollo's rule).
    csrf_prevention: bool = True
    graphiql: bool = True
    introspection: bool = True

    # OpenTelemetry spans per operation and upstream request (needs the `otel` extra).
    tracing: bool = False

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"

    # Set by `serve --sandbox`: the gateway talks to emulators on loopback.
    sandbox: bool = False

    _split = field_validator("api_token_hashes", "cors_origins", mode="before")(_split_commas)

    @field_validator("guidebook_webhook_token")
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty token would accept an empty header: anyone could post.
        return value if value is not None and value.get_secret_value() else None

    @field_validator("sqlrace_state_names", mode="before")
    @classmethod
    def _state_names(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            return json.loads(text)
        pairs = (item.partition("=") for item in text.split(",") if item.strip())
        return {code.strip(): name.strip() for code, _, name in pairs}

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("api_token_hashes")
    @classmethod
    def _hex_digests(cls, value: list[str]) -> list[str]:
        digests = [item.lower() for item in value]
        for digest in digests:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("API_TOKEN_HASHES must hold SHA-256 hex digests")
        return digests

    @field_validator("openf1_url", "guidebook_url", "sqlrace_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("sqlrace_api_path")
    @classmethod
    def _api_path(cls, value: str) -> str:
        path = value.strip("/")
        if path not in ("api", "api/v1"):
            raise ValueError("SQLRACE_API_PATH must be 'api' or 'api/v1'")
        return path

    def timeout_for(self, upstream: str) -> float:
        override: float | None = getattr(self, f"{upstream}_timeout_seconds", None)
        return override if override is not None else self.upstream_timeout_seconds
