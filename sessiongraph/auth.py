"""The gateway's own credential: `Authorization: Bearer <token>` checked against SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

from .errors import Forbidden, Unauthenticated

__all__ = [
    "CREDENTIAL_HEADERS",
    "check_bearer",
    "credential_key",
    "repeated_credential",
    "token_hash",
]

# Headers that carry a caller's credential. Each may come at most once: with two, one piece
# of code would read the first and another the last (RFC 9110 allows neither to be combined).
CREDENTIAL_HEADERS = (b"authorization", b"proxy-authorization", b"x-guidebook-api-key")


def repeated_credential(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The name of a credential header sent more than once (ASGI names are lower case)."""
    seen: set[bytes] = set()
    for name, _ in headers:
        if name in CREDENTIAL_HEADERS:
            if name in seen:
                return name.decode()
            seen.add(name)
    return None


def credential_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Every credential of a request (each sent once), as one key for whose answer it is."""
    found = {name: value for name, value in headers if name in CREDENTIAL_HEADERS}
    return b"\n".join(found.get(name, b"") for name in CREDENTIAL_HEADERS)


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
