"""The cross-request cache of upstream reads, its backends, and request coalescing."""

from __future__ import annotations

from ..config import Settings
from ._backends import CacheBackend, FallbackBackend, MemoryBackend, RedisBackend
from ._response import (
    Freshness,
    Policy,
    ResponseCache,
    Stored,
    current_warnings,
    note_read,
    spoil_trace,
    start_collecting,
    start_trace,
    uncached,
    warn_quota_low,
    warn_stale,
)
from ._results import ResultCache

__all__ = [
    "CacheBackend",
    "FallbackBackend",
    "Freshness",
    "MemoryBackend",
    "Policy",
    "RedisBackend",
    "ResponseCache",
    "ResultCache",
    "Stored",
    "build_cache",
    "current_warnings",
    "note_read",
    "spoil_trace",
    "start_collecting",
    "start_trace",
    "uncached",
    "warn_quota_low",
    "warn_stale",
]


def build_cache(settings: Settings) -> ResponseCache:
    """`memory://` (default), `redis://…` (shared, memory while Redis is down) or `none`."""
    url = settings.cache_url.strip()
    memory = MemoryBackend(settings.cache_max_entries, settings.cache_max_bytes)
    backend: CacheBackend | None
    if url.lower() in ("none", "off", ""):
        backend = None
    elif url.startswith(("redis://", "rediss://", "unix://")):
        backend = FallbackBackend(RedisBackend.from_url(url), memory)
    else:
        backend = memory
    return ResponseCache(backend, grace_seconds=settings.cache_grace_seconds)
