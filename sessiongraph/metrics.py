"""Prometheus metrics: GraphQL requests, upstream calls, cache events, batches, breakers, webhooks.

With several workers, `sessiongraph serve` sets PROMETHEUS_MULTIPROC_DIR so that `/metrics`
on any worker reports the sum over all of them.
"""

from __future__ import annotations

import os
import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "BREAKER_STATE",
    "CACHE_EVENTS",
    "CATALOGUE_AGE",
    "CATALOGUE_ENTRIES",
    "CATALOGUE_REFRESHES",
    "DATALOADER_BATCH_SIZE",
    "GRAPHQL_DURATION",
    "GRAPHQL_REQUESTS",
    "GUIDEBOOK_QUOTA_REMAINING",
    "GUIDEBOOK_QUOTA_USED",
    "UPSTREAM_DURATION",
    "UPSTREAM_REQUESTS",
    "WEBHOOKS",
    "metrics_endpoint",
    "operation_label",
]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

GRAPHQL_REQUESTS = Counter(
    "sessiongraph_graphql_requests_total",
    "GraphQL requests by operation name and outcome (ok, partial, error, rejected, replayed).",
    ["operation", "outcome"],
)
GRAPHQL_DURATION = Histogram(
    "sessiongraph_graphql_request_duration_seconds",
    "Time to answer a GraphQL request.",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_REQUESTS = Counter(
    "sessiongraph_upstream_requests_total",
    "Requests sent to upstreams, by upstream, method and HTTP status (or the error code).",
    ["upstream", "method", "status"],
)
UPSTREAM_DURATION = Histogram(
    "sessiongraph_upstream_request_duration_seconds",
    "Upstream request latency.",
    ["upstream"],
    buckets=_LATENCY_BUCKETS,
)
CACHE_EVENTS = Counter(
    "sessiongraph_cache_events_total",
    "Cache events by upstream: hit, miss, stale, stale_on_error, coalesced, stored, ...",
    ["upstream", "event"],
)
DATALOADER_BATCH_SIZE = Histogram(
    "sessiongraph_dataloader_batch_size",
    "Keys per DataLoader batch.",
    ["loader"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
CATALOGUE_ENTRIES = Gauge(
    "sessiongraph_openf1_catalogue_entries",
    "Meetings and sessions in the OpenF1 catalogue.",
    ["kind"],
    multiprocess_mode="max",
)
CATALOGUE_AGE = Gauge(
    "sessiongraph_openf1_catalogue_age_seconds",
    "Age of the OpenF1 catalogue's data (since OpenF1 sent it).",
    multiprocess_mode="max",
)
CATALOGUE_REFRESHES = Counter(
    "sessiongraph_openf1_catalogue_refreshes_total",
    "OpenF1 catalogue refreshes, by outcome (loaded, failed).",
    ["outcome"],
)
BREAKER_STATE = Gauge(
    "sessiongraph_circuit_breaker_state",
    "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
    ["upstream"],
    multiprocess_mode="max",
)
WEBHOOKS = Counter(
    "sessiongraph_webhooks_total",
    "Webhooks received, by sender, event family (Builder, MobileApp, other, unknown) and "
    "outcome (accepted, duplicate, ignored, refused).",
    ["sender", "family", "outcome"],
)
# `key` is "server" (the configured key) or "caller" (the busiest caller key of the day), never
# one label per key. The count may be shared through Redis, so the latest reading wins.
GUIDEBOOK_QUOTA_USED = Gauge(
    "sessiongraph_guidebook_quota_used",
    "Requests counted today (UTC) against a Guidebook key's daily quota.",
    ["key"],
    multiprocess_mode="mostrecent",
)
GUIDEBOOK_QUOTA_REMAINING = Gauge(
    "sessiongraph_guidebook_quota_remaining",
    "Requests a Guidebook key may still send today (UTC); 0 once spent or refused upstream.",
    ["key"],
    multiprocess_mode="mostrecent",
)

# Operation names come from clients: only tidy names become labels, and only so many.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_OPERATIONS = 200
_seen_operations: set[str] = set()


def operation_label(name: str | None) -> str:
    if not name:
        return "anonymous"
    if not _NAME.match(name):
        return "invalid"
    if name not in _seen_operations:
        if len(_seen_operations) >= _MAX_OPERATIONS:
            return "other"
        _seen_operations.add(name)
    return name


async def metrics_endpoint(_request: Request) -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
