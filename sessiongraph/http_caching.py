"""HTTP caching of query answers: `Cache-Control` from the freshness of the reads behind them,
strong ETags and `304 Not Modified`."""

from __future__ import annotations

import hashlib

__all__ = [
    "NOT_FOUND_CACHE_CONTROL",
    "NO_STORE",
    "cache_control",
    "entity_tag",
    "matches_entity_tag",
]

NO_STORE = "no-store"
# A CDN that kept a PERSISTED_QUERY_NOT_FOUND answer would send it to every client after
# the document was registered, so it is never reused without asking again.
NOT_FOUND_CACHE_CONTROL = "private, no-cache, must-revalidate"
# Longer lists of tags than any client sends are junk, not worth comparing.
_MAX_IF_NONE_MATCH = 4096


def cache_control(max_age: float, *, private: bool) -> str:
    """`max_age`: seconds the answer stays as fresh as its least fresh upstream read."""
    scope = "private" if private else "public"
    return f"{scope}, max-age={max(0, int(max_age))}"


def entity_tag(body: bytes) -> str:
    """Strong: equal tags mean byte-identical bodies."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def matches_entity_tag(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110's weak comparison, as `If-None-Match` uses; junk matches nothing."""
    if not if_none_match or len(if_none_match) > _MAX_IF_NONE_MATCH:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.removeprefix("W/") == tag:
            return True
    return False
