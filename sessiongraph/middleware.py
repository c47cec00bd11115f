"""The request guard (request ids, credential headers, body limits) and the CSRF rule."""

from __future__ import annotations

import asyncio

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import requestctx
from .auth import repeated_credential

__all__ = [
    "CSRF_MESSAGE",
    "RequestGuard",
    "csrf_safe",
    "graphql_error_response",
    "wants_ide_page",
]


def graphql_error_response(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    # A refusal is about one request; no cache may hand it to another.
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


# Content types a browser may send cross-site without a CORS preflight.
_SIMPLE_TYPES = frozenset(
    {b"", b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data"}
)
_PREFLIGHT_HEADERS = (b"x-apollo-operation-name", b"apollo-require-preflight")
CSRF_MESSAGE = (
    "This request has been blocked as a potential cross-site request forgery. Send it with "
    "a Content-Type other than text/plain, application/x-www-form-urlencoded or "
    "multipart/form-data (e.g. application/json), or with a non-empty "
    "Apollo-Require-Preflight or X-Apollo-Operation-Name header."
)


def csrf_safe(scope: Scope) -> bool:
    """Apollo's rule for POSTs: they must be ones a browser would have preflighted.

    GET and HEAD run queries only, and nothing here authenticates by cookie, so a cross-site
    GET can do no more than any client can; they are never refused.
    """
    if scope["method"] != "POST":
        return True  # GET and HEAD run queries only; other methods are refused (405)
    headers = dict(scope["headers"])
    if any(headers.get(name, b"").strip() for name in _PREFLIGHT_HEADERS):
        return True
    media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return media_type not in _SIMPLE_TYPES


def wants_ide_page(scope: Scope) -> bool:
    """A browser navigating to `/graphql` (perhaps with `?query=…` for the editor) asks for
    HTML: it gets the GraphiQL page and no operation runs. API clients never ask for HTML."""
    if scope["method"] not in ("GET", "HEAD"):
        return False
    accept = dict(scope["headers"]).get(b"accept", b"").lower()
    return b"text/html" in accept


class RequestGuard:
    """One pass around every HTTP request: takes `X-Request-ID` from the client (or makes one)
    and echoes it; refuses a credential header sent twice (before anything reads one), a body
    over `max_bytes` (`max_multipart_bytes` for uploads; 413, before it is buffered) and a body
    that does not arrive whole within `body_seconds` (408: a client trickling its body would
    hold a connection indefinitely)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_multipart_bytes: int, body_seconds: float
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_multipart_bytes = max_multipart_bytes
        self.body_seconds = body_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        limit = self.max_multipart_bytes if multipart else self.max_bytes
        offered = headers.get(b"x-request-id")
        request_id = requestctx.new_request_id(offered.decode("latin-1") if offered else None)
        requestctx.start(request_id)
        echoed = (b"x-request-id", request_id.encode())
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                kept = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                message = {**message, "headers": [*kept, echoed]}
            await send(message)

        refusal = self._refusal(scope, headers, limit)
        if refusal is not None:
            await refusal(scope, receive, guarded_send)
            return
        deadline = asyncio.get_running_loop().time() + self.body_seconds
        complete = False
        received = 0

        async def guarded_receive() -> Message:
            nonlocal complete, received
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyTimeout from None
            complete = not message.get("more_body", False)
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(limit)(scope, receive, guarded_send)
        except _BodyTimeout:
            if not started:
                response = graphql_error_response(
                    408,
                    f"The request body did not arrive within {self.body_seconds:g} s",
                    "REQUEST_TIMEOUT",
                    headers={"Connection": "close"},
                )
                await response(scope, receive, guarded_send)

    @staticmethod
    def _refusal(scope: Scope, headers: dict[bytes, bytes], limit: int) -> Response | None:
        repeated = repeated_credential(scope["headers"])
        if repeated is not None:
            return graphql_error_response(
                400, f"Send the {repeated} header at most once", "BAD_REQUEST"
            )
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _too_large(limit)
        return None


def _too_large(limit: int) -> Response:
    return graphql_error_response(413, f"Request body exceeds {limit} bytes", "REQUEST_TOO_LARGE")


class _BodyTooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass
