"""ASGI middleware: request ids, credential headers, CSRF prevention, request body limits."""

from __future__ import annotations

import asyncio

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import requestctx
from .auth import repeated_credential

__all__ = [
    "BodyReadTimeout",
    "BodySizeLimit",
    "CredentialHeaders",
    "CsrfPrevention",
    "RequestId",
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


class CredentialHeaders:
    """Refuses requests that send a credential header twice, before anything reads one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        repeated = repeated_credential(scope["headers"]) if scope["type"] == "http" else None
        if repeated is None:
            await self.app(scope, receive, send)
            return
        response = graphql_error_response(
            400, f"Send the {repeated} header at most once", "BAD_REQUEST"
        )
        await response(scope, receive, send)


class RequestId:
    """Takes `X-Request-ID` from the client (or makes one), logs with it and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope["headers"]).get(b"x-request-id")
        request_id = requestctx.new_request_id(offered.decode("latin-1") if offered else None)
        requestctx.start(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


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


class CsrfPrevention:
    """Apollo's rule for POSTs: they must be ones a browser would have preflighted.

    GET and HEAD run queries only, and nothing here authenticates by cookie, so a cross-site
    GET can do no more than any client can; they are never refused.
    """

    def __init__(self, app: ASGIApp, path: str = "/graphql") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or self._safe(scope):
            await self.app(scope, receive, send)
            return
        response = graphql_error_response(400, CSRF_MESSAGE, "CSRF_PREVENTED")
        await response(scope, receive, send)

    @staticmethod
    def _safe(scope: Scope) -> bool:
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


class BodySizeLimit:
    """Refuses request bodies over `max_bytes` with 413 before they are buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = graphql_error_response(
            413, f"Request body exceeds {self.max_bytes} bytes", "REQUEST_TOO_LARGE"
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class BodyReadTimeout:
    """Answers 408 when a request body does not arrive whole within `seconds`.

    A client trickling its body would otherwise hold a connection and a task indefinitely.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        complete = False
        started = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyTimeout from None
            complete = not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except _BodyTimeout:
            if not started:
                response = graphql_error_response(
                    408,
                    f"The request body did not arrive within {self.seconds:g} s",
                    "REQUEST_TIMEOUT",
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)


class _BodyTimeout(Exception):
    pass
