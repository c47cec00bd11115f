"""`POST /webhooks/guidebook`: Guidebook Builder's change events drop the cached reads they
make stale, once per event id, without a call to Guidebook."""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
from pydantic import SecretStr
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .cache import CacheBackend, MemoryBackend
from .metrics import WEBHOOKS
from .middleware import graphql_error_response
from .providers.guidebook import GuidebookProvider, webhook_change

__all__ = [
    "GUIDEBOOK_WEBHOOK_PATH",
    "MAX_WEBHOOK_BYTES",
    "SEEN_SECONDS",
    "TOKEN_HEADER",
    "GuidebookWebhooks",
]

logger = logging.getLogger("sessiongraph.webhooks")

GUIDEBOOK_WEBHOOK_PATH = "/webhooks/guidebook"
# ASGI servers hand header names over lowercased, underscores kept (h11 and httptools both).
TOKEN_HEADER = b"gb_webhook_security_token"
# Guidebook's events are a few hundred bytes; anything near this is not one of them.
MAX_WEBHOOK_BYTES = 64 * 1024
# Guidebook documents no retry policy; a redelivery later than a day is taken as new.
SEEN_SECONDS = 86400.0
_SEEN_KEY = "webhook|guidebook|"
_MAX_NAME = 200
_FAMILIES = frozenset({"Builder", "MobileApp"})


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class GuidebookWebhooks:
    """Checks the security token, reads the event, and has the Guidebook provider drop what
    it made stale; an event id seen in the last day is answered as a duplicate."""

    def __init__(
        self,
        token: SecretStr,
        provider: GuidebookProvider | None,
        backend: CacheBackend | None,
    ) -> None:
        self._token = token.get_secret_value().encode()
        self.provider = provider
        # Shared by the workers when the cache is in Redis; without a cache, this process's.
        self.seen: CacheBackend = backend or MemoryBackend(10_000, 4 * 1024 * 1024)

    async def endpoint(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            weid, event, properties = _parse(await _read_limited(request))
        except _Refused as refused:
            WEBHOOKS.labels("guidebook", "unknown", "refused").inc()
            # Once the body is left unread the connection cannot carry another request.
            headers = {"Connection": "close"} if refused.status == 413 else None
            return graphql_error_response(
                refused.status, refused.message, refused.code, headers=headers
            )
        prefix = event.partition("-")[0]
        family = prefix if prefix in _FAMILIES else "other"
        change = webhook_change(event, properties)
        if not change.tags or self.provider is None:
            note = (
                "this event changes nothing the gateway caches"
                if not change.tags
                else "Guidebook is not configured here, so nothing of it is cached"
            )
            WEBHOOKS.labels("guidebook", family, "ignored").inc()
            return _answer({"accepted": True, "invalidated": [], "notes": [note]})
        if not await self.seen.add(_SEEN_KEY + weid, b"1", SEEN_SECONDS):
            WEBHOOKS.labels("guidebook", family, "duplicate").inc()
            logger.info("guidebook webhook already seen", extra={"weid": weid, "event": event})
            return _answer({"accepted": True, "duplicate": True, "invalidated": []})
        await self.provider.apply_webhook(change)
        WEBHOOKS.labels("guidebook", family, "accepted").inc()
        # Never the properties: they name the Builder user (name, email, company).
        logger.info(
            "guidebook webhook accepted",
            extra={"weid": weid, "event": event, "invalidated": list(change.tags)},
        )
        body: dict[str, Any] = {"accepted": True, "invalidated": list(change.tags)}
        if change.notes:
            body["notes"] = list(change.notes)
        return _answer(body)

    def _authenticate(self, request: Request) -> None:
        sent = [value for name, value in request.scope["headers"] if name == TOKEN_HEADER]
        candidate = sent[0] if len(sent) == 1 else b""
        # Constant time, and compared even when absent or repeated.
        if hmac.compare_digest(candidate, self._token) and len(sent) == 1:
            return
        reason = "missing" if not sent else ("repeated" if len(sent) > 1 else "wrong")
        client = request.client.host if request.client is not None else None
        logger.warning(
            "guidebook webhook refused: GB_WEBHOOK_SECURITY_TOKEN %s",
            reason,
            extra={"reason": reason, "client": client},
        )
        raise _Refused(
            401,
            "The GB_WEBHOOK_SECURITY_TOKEN header must hold this webhook's security token",
            "UNAUTHENTICATED",
        )


async def _read_limited(request: Request) -> bytes:
    """The body, refused (413) as soon as it is known to exceed MAX_WEBHOOK_BYTES."""
    too_large = _Refused(
        413, f"A webhook body may not exceed {MAX_WEBHOOK_BYTES} bytes", "REQUEST_TOO_LARGE"
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_WEBHOOK_BYTES:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise _Refused(400, "The webhook body did not arrive whole", "BAD_REQUEST") from None
    return b"".join(chunks)


def _parse(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """`weid`, `event` and `properties` (an empty object when absent) of a webhook body."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad("The webhook body must be JSON") from None
    if not isinstance(payload, dict):
        raise _bad("The webhook body must be a JSON object")
    weid, event = _name(payload, "weid"), _name(payload, "event")
    properties = payload.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise _bad("`properties` must be a JSON object when present")
    return weid, event, properties


def _name(payload: dict[str, Any], field: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME:
        raise _bad(f"`{field}` must be a non-empty string of at most {_MAX_NAME} characters")
    return value


def _bad(message: str) -> _Refused:
    return _Refused(400, message, "BAD_REQUEST")


def _answer(body: dict[str, Any]) -> Response:
    return Response(
        orjson.dumps(body),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
