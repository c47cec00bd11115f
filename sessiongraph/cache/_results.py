"""Whole GraphQL responses replayed while every upstream read behind them is still fresh.

A response is stored only for a query whose reads all came fresh from (or went into) the
upstream cache, without errors or warnings; it expires with the first of those reads and is
dropped by the same tags, so it is never staler than the reads it was computed from.
"""

from __future__ import annotations

import hashlib
import struct
import time

from ._response import ReadTrace, ResponseCache

__all__ = ["ResultCache"]

RESULT_TAG = "graphql-results"
# Each stored body is preceded by the instant it stops being fresh (for `Cache-Control`).
_FRESH_UNTIL = struct.Struct("!d")


class ResultCache:
    def __init__(self, responses: ResponseCache, *, min_seconds: float = 0.5) -> None:
        self.responses = responses
        self.min_seconds = min_seconds

    @property
    def enabled(self) -> bool:
        return self.responses.backend is not None

    @staticmethod
    def key(method: str, request: bytes, credential: bytes | None) -> str:
        digest = hashlib.sha256()
        for part in (method.encode(), request, credential or b""):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return "graphql|" + digest.hexdigest()

    async def get(self, key: str) -> tuple[bytes, float] | None:
        """The stored body and the instant it stops being fresh."""
        backend = self.responses.backend
        if backend is None:
            return None
        found = await backend.get(key)
        if found is None or len(found) < _FRESH_UNTIL.size:
            return None
        self.responses.count("graphql", "hit")
        (fresh_until,) = _FRESH_UNTIL.unpack_from(found)
        return found[_FRESH_UNTIL.size :], fresh_until

    async def put(self, key: str, body: bytes, trace: ReadTrace, invalidations: int) -> None:
        backend = self.responses.backend
        if backend is None or not trace.cacheable or trace.reads == 0:
            return
        if invalidations != self.responses.invalidations:
            return  # a write happened while this response was computed
        ttl = trace.fresh_until - time.time()
        if ttl < self.min_seconds:
            return
        stored = _FRESH_UNTIL.pack(trace.fresh_until) + body
        await backend.set(key, stored, ttl, (*trace.tags, RESULT_TAG))
        self.responses.count("graphql", "stored")
