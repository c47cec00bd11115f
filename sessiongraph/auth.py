"""The gateway's own credential: `Authorization: Bearer <token>` checked against SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from .errors import Forbidden, Unauthenticated

__all__ = ["check_bearer", "token_hash"]


def token_hash(token: str) -> str:
    """What `API_TOKEN_HASHES` holds for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_bearer(authorization: str | None, allowed_hashes: Sequence[str]) -> None:
    """Raise UNAUTHENTICATED without a bearer token, FORBIDDEN for one not configured."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("this needs an `Authorization: Bearer <token>` header")
    digest = token_hash(token)
    # Compare with every hash, not stopping at a match: the time taken reveals nothing.
    matched = False
    for allowed in allowed_hashes:
        matched |= hmac.compare_digest(digest, allowed)
    if not matched:
        raise Forbidden("this token may not run mutations here")
