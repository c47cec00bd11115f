"""The Starlette application: `/graphql`, `/healthz`, `/readyz`, `/webhooks/guidebook`, and the
upstream lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from cross_web import HTTPException
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from graphql.execution import (
    ExperimentalIncrementalExecutionResults,
    SubsequentIncrementalExecutionResult,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry import UNSET
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.http.streaming import SSETransport
from strawberry.schema import BaseSchema
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult

from . import requestctx, tracing
from .auth import check_bearer, credential_key
from .cache import (
    ResponseCache,
    ResultCache,
    current_warnings,
    spoil_trace,
    start_collecting,
    start_trace,
)
from .config import Settings
from .errors import SessionGraphError, SubscriptionLimit
from .http_caching import (
    NO_STORE,
    NOT_FOUND_CACHE_CONTROL,
    cache_control,
    entity_tag,
    matches_entity_tag,
)
from .incremental import settle
from .live import Live, Outbox, Subscribing, build_live, subscribing
from .loaders import Loaders
from .metrics import GRAPHQL_DURATION, GRAPHQL_REQUESTS, metrics_endpoint, operation_label
from .middleware import (
    CSRF_MESSAGE,
    RequestGuard,
    csrf_safe,
    graphql_error_response,
    wants_ide_page,
)
from .persisted import PersistedQueries, TrustedDocuments
from .playground import assets_mount, playground_response
from .providers import DailyQuota, Providers, UpstreamStatus, build_providers
from .providers.openf1_catalogue import Catalogue
from .schema.build import build_schema
from .schema.context import Context
from .schema.errors import classify, coded
from .webhooks import GUIDEBOOK_WEBHOOK_PATH, GuidebookWebhooks

__all__ = ["create_app", "create_served_app"]

# What browsers may send: Apollo's preflight headers, credentials (ours and a caller's own
# Guidebook key), request ids and trace context.
CORS_REQUEST_HEADERS = (
    "Apollo-Require-Preflight",
    "X-Apollo-Operation-Name",
    "Authorization",
    "Content-Type",
    "X-Request-ID",
    "X-Guidebook-Api-Key",
    "traceparent",
)
_HTTP_ERROR_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
# Legacy graphql-ws "ka" messages, and how long a socket may wait before `connection_init`.
KEEP_ALIVE_SECONDS = 15.0
CONNECTION_INIT_SECONDS = 10.0


class ResumableSSE(SSETransport):
    """graphql-sse's distinct-connections mode, each event with its cursor as `id:`, which an
    EventSource (or graphql-sse) sends back as `Last-Event-ID` when it reconnects. Lines end
    in LF (urql's parser finds no event in CRLF-separated ones)."""

    def encode_next(self, response: GraphQLHTTPResponse, encode_json: Any) -> str:
        event = super().encode_next(response, encode_json)
        cursor = (response.get("extensions") or {}).get("cursor")
        return f"id: {cursor}\n{event}" if isinstance(cursor, str) else event

    def encode_event(self, event: str, data: str | None = None) -> str:
        return super().encode_event(event, data).replace("\r\n", "\n")

    def encode_comment(self, comment: str) -> str:
        return f": {comment}\n\n"


_JSON_TYPES = ("application/json", "application/graphql-response+json", "application/graphql+json")


def _stream_preferred(accept: str, transport: Any) -> bool:
    """Whether the client prefers `transport`'s stream to a JSON answer: listed before every
    JSON type, or with a higher quality (urql lists JSON first and event streams after)."""
    stream: tuple[int, float] | None = None
    json_type: tuple[int, float] | None = None
    for index, (item, quality) in enumerate(_accept_items(accept)):
        if stream is None and transport.accepts(item):
            stream = (index, quality)
        elif json_type is None and _media(item) in _JSON_TYPES:
            json_type = (index, quality)
    if stream is None:
        return False
    if json_type is None:
        return True
    return stream[1] > json_type[1] or (stream[1] == json_type[1] and stream[0] < json_type[0])


def _is_subscription(data: GraphQLRequestData) -> bool:
    query = data.query or ""
    # Every HTTP request asks: no parse for the documents that cannot be one.
    if "subscription" not in query:
        return False
    return _subscription_operation(query, data.operation_name)


@functools.lru_cache(maxsize=256)
def _subscription_operation(query: str, operation_name: str | None) -> bool:
    try:
        document = parse(query)
    except GraphQLError:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    for operation in operations:
        if operation_name is None or (
            operation.name is not None and operation.name.value == operation_name
        ):
            return operation.operation is OperationType.SUBSCRIPTION
    return False


class _EncodedEvents:
    """An event's payload encoded once for all its subscribers: one shared execution hands
    them one `data` object, so only the operation id differs between their messages."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        # (id(data), extensions as JSON) -> (data, payload as JSON); data kept so no id reuse
        self._payloads: OrderedDict[tuple[int, bytes], tuple[object, bytes]] = OrderedDict()

    def message(self, message: Mapping[str, object]) -> str:
        payload = message.get("payload")
        if (
            message.get("type") not in ("next", "data")
            or message.keys() != {"id", "type", "payload"}
            or type(payload) is not dict
            or payload.keys() - {"data", "extensions"}
            or type(payload.get("data")) is not dict
        ):
            return orjson.dumps(message).decode()
        data = payload["data"]
        key = (id(data), orjson.dumps(payload.get("extensions")))
        found = self._payloads.get(key)
        if found is None or found[0] is not data:
            found = (data, orjson.dumps(payload))
            self._payloads[key] = found
            if len(self._payloads) > self._size:
                self._payloads.popitem(last=False)
        head = orjson.dumps({"id": message.get("id"), "type": message["type"]})
        return (head[:-1] + b',"payload":' + found[1] + b"}").decode()


_encoded_events = _EncodedEvents()


class TextFrames(ASGIWebSocketAdapter):
    """graphql-ws and graphql-transport-ws messages are text frames: browsers' clients cannot
    read binary ones (strawberry sends bytes when `encode_json` returns bytes). Once a group
    of subscribers writes to this connection, every message goes through its outbox, in order."""

    _outbox: Outbox | None = None

    def outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox(self._send_text)
        return self._outbox

    @contextlib.asynccontextmanager
    async def outboxed(self) -> AsyncIterator[None]:
        """The connection's lifetime: its outbox, if one was made, closes with it."""
        try:
            yield
        finally:
            if self._outbox is not None:
                await self._outbox.close()

    async def send_json(self, message: Mapping[str, object]) -> None:
        text = _encoded_events.message(message)
        if self._outbox is None:
            await self._send_text(text)
            return
        try:
            await self._outbox.send(text)
        except ConnectionError as exc:  # the outbox closed with the connection
            raise WebSocketDisconnected from exc

    async def _send_text(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, each operation's task knowing what it runs and where its frames
    go (a live topic's subscribers join a group through it: see `Groups`)."""

    websocket: TextFrames

    async def handle(self) -> None:
        async with self.websocket.outboxed():
            await super().handle()

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        subscribing(
            Subscribing(
                operation.id,
                operation.query,
                operation.variables,
                operation.operation_name,
                self.websocket.outbox,
                "next",
            )
        )
        await super().run_operation(operation)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol (subscriptions-transport-ws), its events `data` messages,
    its live topics' subscribers grouped the same way."""

    websocket: TextFrames

    async def handle(self) -> None:
        async with self.websocket.outboxed():
            await super().handle()

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        subscribing(
            Subscribing(
                operation_id, query, variables, operation_name, self.websocket.outbox, "data"
            )
        )
        await super().handle_async_results(operation_id, query, operation_name, variables)


class GraphQLView(GraphQL[Context, None]):
    """strawberry's ASGI view with our context, orjson, and GraphQL-shaped HTTP errors."""

    websocket_adapter_class = TextFrames
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    stream_transport_classes_by_protocol = {  # noqa: RUF012 - strawberry reads it so
        **GraphQL.stream_transport_classes_by_protocol,
        GRAPHQL_SSE_PROTOCOL: ResumableSSE,
    }

    def __init__(
        self,
        schema: BaseSchema,
        settings: Settings,
        providers: Providers,
        persisted: PersistedQueries,
        live: Live | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            # The GraphQL multipart request spec, for images; CSRF prevention covers it too.
            multipart_uploads_enabled=True,
            subscription_protocols=(
                GRAPHQL_TRANSPORT_WS_PROTOCOL,
                GRAPHQL_WS_PROTOCOL,
                GRAPHQL_SSE_PROTOCOL,
                MULTIPART_SUBSCRIPTION_PROTOCOL,
            ),
            # Legacy graphql-ws clients expect the server's "ka" messages.
            keep_alive=True,
            keep_alive_interval=KEEP_ALIVE_SECONDS,
            connection_init_wait_timeout=timedelta(seconds=CONNECTION_INIT_SECONDS),
            # Counted by the subscription resolvers, with a coded error (SUBSCRIPTION_LIMIT).
            max_subscriptions_per_connection=None,
            # Browsers do not apply CORS to WebSocket handshakes: the same origins as CORS.
            allowed_origins=settings.cors_origins,
        )
        self.settings = settings
        self.providers = providers
        self.live = live
        self.results = ResultCache(providers.cache)
        self.persisted = persisted
        # What an answer depends on besides the URL and body: the media type asked for, and
        # the credentials that change what a caller may see.
        self._vary = ", ".join(
            ("Accept", "X-Guidebook-Api-Key")
            + (("Authorization",) if settings.require_token_for_queries else ())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        started = time.perf_counter()
        facts = requestctx.current() or requestctx.start(requestctx.new_request_id(None))
        if scope["method"] == "HEAD":
            # HEAD answers exactly like GET, without the body (RFC 9110 9.3.2).
            scope = {**scope, "method": "GET"}
            send = _without_body(send)
        scope = _normalized_media_types(scope)
        media_type = _response_media_type(scope)
        response: Response | None = None
        if self.settings.csrf_prevention and not csrf_safe(scope):
            response = graphql_error_response(400, CSRF_MESSAGE, "CSRF_PREVENTED")
            facts.outcome = "rejected"
        elif self.settings.require_token_for_queries and not wants_ide_page(scope):
            response = self._credential_refusal(scope, media_type)
            if response is not None:
                facts.outcome = "rejected"
        if response is None:
            response = await self._answer(scope, receive, media_type, facts)
        response.headers.setdefault("cache-control", NO_STORE)
        self._observe(facts, started)
        await response(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket connection holds one of the process's live connections while open;
        beyond MAX_LIVE_CONNECTIONS the handshake is refused (close 1013, try again later)."""
        if self.live is None:
            await super().__call__(scope, receive, send)
            return
        try:
            with self.live.connection():
                await super().__call__(scope, receive, send)
        except SubscriptionLimit:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1013, "reason": "too many"})

    async def on_ws_connect(self, context: Context) -> Any:
        """REQUIRE_TOKEN_FOR_QUERIES: the bearer token in `connection_init`'s payload
        (`Authorization` or `authorization`, as Apollo and graphql-ws clients send it) or the
        handshake's header; a refusal closes with 4403, which the clients report."""
        if not self.settings.require_token_for_queries:
            return UNSET
        params = context.connection_params
        header = None
        if isinstance(params, dict):
            for name in ("Authorization", "authorization"):
                if isinstance(params.get(name), str):
                    header = params[name]
        if header is None and context.request is not None:
            header = context.request.headers.get("authorization")
        try:
            check_bearer(header, self.settings.api_token_hashes)
        except SessionGraphError as exc:
            raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) from None
        return UNSET

    async def _answer(
        self, scope: Scope, receive: Receive, media_type: str, facts: requestctx.RequestFacts
    ) -> Response:
        body = b""
        if scope["method"] == "POST" and not _multipart(scope):
            body = await _read_body(receive)
            receive = _replay(body)
        try:
            scope, body = await self._expand_persisted(scope, body)
        except SessionGraphError as exc:
            facts.outcome = "rejected"
            return _persisted_refusal(exc, media_type)
        if scope["method"] == "POST" and not _multipart(scope):
            receive = _replay(body)
        key: str | None = None
        if self.results.enabled and _replayable(scope):
            headers = dict(scope["headers"])
            request_bytes = b"\n".join(
                (scope.get("query_string", b""), headers.get(b"accept", b""), body)
            )
            # Duplicate credential headers were refused (RequestGuard), so this is
            # exactly the credential the checks accepted.
            key = ResultCache.key(scope["method"], request_bytes, credential_key(scope["headers"]))
            cached = await self.results.get(key)
            if cached is not None:
                facts.outcome = "replayed"
                facts.operation = _operation_name(scope, body)
                replayed = Response(cached[0], media_type=media_type)
                return self._http_cached(scope, replayed, cached[1])
        trace = start_trace()
        invalidations = self.providers.cache.invalidations
        try:
            with tracing.span("graphql", **{"http.request.method": scope["method"]}) as current:
                request = Request(scope=scope, receive=receive)
                try:
                    response = await self.run(request)
                finally:
                    await request.close()  # the uploaded files a multipart form spooled
                if current is not None:
                    current.set_attribute("graphql.operation.name", facts.operation or "")
                    current.set_attribute("graphql.outcome", facts.outcome)
        except HTTPException as exc:
            code = _HTTP_ERROR_CODES.get(exc.status_code, "BAD_REQUEST")
            status = exc.status_code
            if exc.reason.startswith("Unknown operation named"):
                # strawberry looks the operation up before any extension sees the document;
                # a request error like the others (200 under plain JSON).
                code = "OPERATION_RESOLUTION_FAILURE"
                status = 400 if media_type != "application/json" else 200
            response = graphql_error_response(status, exc.reason, code)
            facts.outcome = "rejected"
            trace.spoil()
        if response.media_type == "application/json" and media_type != "application/json":
            # GraphQL over HTTP: the new media type carries real status codes.
            response.headers["content-type"] = media_type
            if facts.outcome == "rejected" and response.status_code == 200:
                response.status_code = 400
        if isinstance(response, StreamingResponse) or not trace.cacheable:
            return response
        if key is not None and response.status_code == 200:
            await self.results.put(key, bytes(response.body), trace, invalidations)
        return self._http_cached(scope, response, trace.fresh_until)

    async def _expand_persisted(self, scope: Scope, body: bytes) -> tuple[Scope, bytes]:
        if scope["method"] == "GET":
            query_string = scope.get("query_string", b"")
            expanded = await self.persisted.expand_query_string(query_string)
            return (
                {**scope, "query_string": expanded} if expanded is not query_string else scope
            ), body
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if content_type.startswith(b"application/json"):
            return scope, await self.persisted.expand_body(body)
        return scope, body

    def _http_cached(self, scope: Scope, response: Response, fresh_until: float) -> Response:
        """A successful query answer: how long it may be reused, its ETag, or a 304."""
        if response.status_code != 200:
            return response
        max_age = min(float(self.settings.http_max_age_seconds), fresh_until - time.time())
        headers = dict(scope["headers"])
        private = self.settings.require_token_for_queries or b"x-guidebook-api-key" in headers
        tag = entity_tag(bytes(response.body))
        caching = {
            "Cache-Control": cache_control(max_age, private=private),
            "ETag": tag,
            "Vary": self._vary,
        }
        if_none_match = headers.get(b"if-none-match", b"").decode("latin-1")
        if matches_entity_tag(if_none_match, tag):
            return Response(status_code=304, headers=caching)
        response.headers.update(caching)
        return response

    def _credential_refusal(self, scope: Scope, media_type: str) -> Response | None:
        """REQUIRE_TOKEN_FOR_QUERIES: anonymous callers learn nothing, not even schema hints,
        so the token is checked before the document is parsed."""
        header = Request(scope).headers.get("authorization")
        try:
            check_bearer(header, self.settings.api_token_hashes)
        except SessionGraphError as exc:
            spec = media_type != "application/json"
            status = (401 if exc.code == "UNAUTHENTICATED" else 403) if spec else 200
            response = graphql_error_response(status, exc.message, exc.code)
            response.headers["content-type"] = media_type
            return response
        return None

    @staticmethod
    def _observe(facts: requestctx.RequestFacts, started: float) -> None:
        operation = operation_label(facts.operation)
        GRAPHQL_REQUESTS.labels(operation, facts.outcome).inc()
        GRAPHQL_DURATION.labels(operation).observe(time.perf_counter() - started)

    async def get_context(self, request: Any, response: Any) -> Context:
        start_collecting()
        providers = self.providers.for_request(request.headers)
        context = Context(
            settings=self.settings,
            providers=providers,
            loaders=Loaders(providers, batching=self.settings.dataloader_batching),
            request=request,
            response=response,
            live=self.live,
        )
        if isinstance(request, WebSocket):
            context.extra["websocket"] = True
        return context

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        # Parse errors never reach the schema extensions, so code whatever is still uncoded.
        for error in result.errors or ():
            if "code" not in (error.extensions or {}):
                error.extensions = {**(error.extensions or {}), "code": classify(error)}
        facts = requestctx.current()
        if result.errors:
            spoil_trace()
            if facts is not None:
                facts.outcome = _outcome(result)
        body = process_result(result)
        if (
            facts is not None
            and facts.outcome == "rejected"
            and _accepts(request.headers.get("accept", ""), GRAPHQL_RESPONSE)
        ):
            # The spec's media type: a request that never executed has no `data` at all.
            body.pop("data", None)
        warnings = current_warnings()
        if warnings:
            spoil_trace()
            body["extensions"] = {**(body.get("extensions") or {}), "warnings": warnings}
        return body

    async def execute_operation(
        self,
        request: Any,
        request_adapter: Any,
        request_data: Any,
        context: Context,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        result = await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )
        # Multipart only for a single operation whose client asked for it; a batch or a
        # client that did not gets every deferred and streamed part in one answer.
        if isinstance(result, list):
            answered: Any = [await self._settled(r) for r in result]
        elif not _accepts(request_adapter.headers.get("accept", ""), "multipart/mixed"):
            answered = await self._settled(result)
        else:
            return result  # its later parts still load
        if isinstance(answered, list | ExecutionResult):
            # Finished, not a stream that has yet to run: what it loaded can go.
            context.loaders.release()
        return answered

    async def _settled(self, result: Any) -> Any:
        if not isinstance(result, ExperimentalIncrementalExecutionResults):
            return result
        initial = list(result.initial_result.errors or ())
        settled = await settle(result)
        later = (settled.errors or [])[len(initial) :]
        if later:
            coded_later = [coded(error) for error in later]
            self.schema.process_errors(coded_later)
            settled.errors = [*initial, *coded_later]
        return settled

    async def _process_stream_result(
        self, request: Any, value: Any, all_pending: list[Any]
    ) -> tuple[GraphQLHTTPResponse, list[Any]]:
        # strawberry codes and masks only the first payload (through the schema extensions);
        # the deferred and streamed parts get the same treatment here.
        if isinstance(value, SubsequentIncrementalExecutionResult):
            errors: list[GraphQLError] = []
            for part in (*(value.incremental or ()), *(value.completed or ())):
                if part.errors:
                    part.errors = [coded(error) for error in part.errors]
                    errors.extend(part.errors)
            if errors:
                self.schema.process_errors(errors)
        response, pending = await super()._process_stream_result(request, value, all_pending)
        # strawberry writes `extensions: null` and drops what process_result put there;
        # a payload carries the warnings (stale data) its part brought, or no extensions.
        warnings = current_warnings()
        reported = getattr(request.state, "warnings_reported", 0)
        request.state.warnings_reported = len(warnings)
        extensions = {**(response.get("extensions") or {})}
        if len(warnings) > reported:
            extensions["warnings"] = warnings[reported:]
        if extensions:
            response["extensions"] = extensions
        else:
            response.pop("extensions", None)
        return response, pending

    def _get_stream_transport_from_headers(self, headers: Mapping[str, str]) -> Any:
        # A stream only when the client prefers it to JSON (queries then keep their ETags and
        # Cache-Control, and batches work), or for a subscription (below).
        transport = super()._get_stream_transport_from_headers(headers)
        accept = next((v for k, v in headers.items() if k.lower() == "accept"), "")
        return transport if transport is not None and _stream_preferred(accept, transport) else None

    async def parse_http_body(self, request: Any) -> Any:
        data = await super().parse_http_body(request)
        if (
            isinstance(data, GraphQLRequestData)
            and data.protocol == "http"
            and _is_subscription(data)
        ):
            # A subscription from a client that lists JSON first (urql): the stream it accepts.
            transport = super()._get_stream_transport_from_headers(request.headers)
            if transport is None:
                # Run as a query, its resolver's generator would be a null for a non-null field.
                raise HTTPException(
                    406,
                    "A subscription needs a stream: send `Accept: text/event-stream` (GraphQL "
                    "over SSE) or `multipart/mixed; subscriptionSpec=1.0`, or use a WebSocket "
                    "(graphql-transport-ws) on this path",
                )
            data.protocol = transport.protocol
        return data

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A browser navigating to `/graphql?query=…` gets the page with that query, unrun.
        browser = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        return browser or super().should_render_graphql_ide(request)

    async def render_graphql_ide(self, request: Request) -> Response:
        # Our GraphiQL page and assets, not strawberry's, which load from a CDN.
        return playground_response()

    def decode_json(self, data: str | bytes) -> object:
        """A WebSocket frame (HTTP bodies go through `parse_json`): a JSON object, else the
        protocol's 4400 close (strawberry would fail on other JSON values)."""
        message = orjson.loads(data)
        problem = _ws_message_problem(message)
        if problem is not None:
            raise json.JSONDecodeError(problem, str(data), 0)
        return message

    def parse_json(self, data: str | bytes) -> Any:
        """An HTTP body or parameter: GraphQL over HTTP's request parameters, each of its type."""
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, "Unable to parse request body as JSON") from exc
        operations = payload if isinstance(payload, list) else [payload]
        if not all(isinstance(operation, dict) for operation in operations):
            raise HTTPException(
                400, "The request body must be a JSON object, or an array of them (a batch)"
            )
        for operation in operations:
            problem = _parameter_problem(operation)
            if problem is not None:
                raise HTTPException(400, problem)
        return payload

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


def _ws_message_problem(message: object) -> str | None:
    """What makes a WebSocket message invalid under graphql-transport-ws (and the legacy
    graphql-ws), which strawberry would otherwise trip over: None when it is well formed."""
    if not isinstance(message, dict):
        return "a message must be a JSON object"
    if not isinstance(message.get("id", ""), str):
        return "`id` must be a string"
    payload = message.get("payload")
    if message.get("type") in ("subscribe", "start"):
        if not isinstance(payload, dict):
            return "a subscribe message's `payload` must be an object"
        if not isinstance(payload.get("query"), str):
            return "`payload.query` must be a string"
        problem = _parameter_problem(payload)
        if problem is not None:
            return f"payload {problem}"
    elif message.get("type") in ("ping", "pong") and not isinstance(payload, dict | None):
        return "`payload` must be an object when present"
    return None


def _parameter_problem(operation: dict[str, Any]) -> str | None:
    """The first of GraphQL's request parameters (HTTP body or WebSocket payload) that has the
    wrong type, as a message; None when all are right."""
    for name, kind, what in _PARAMETER_TYPES:
        value = operation.get(name)
        if value is not None and not isinstance(value, kind):
            return f"`{name}` must be {what} when present"
    return None


# GraphQL over HTTP's request parameters; another type is a malformed request (400).
_PARAMETER_TYPES = (
    ("query", str, "a string"),
    ("operationName", str, "a string"),
    ("variables", dict, "an object"),
    ("extensions", dict, "an object"),
    ("documentId", str, "a string"),
)
_PRE_EXECUTION_CODES = frozenset(
    {
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "BAD_USER_INPUT",
        "QUERY_TOO_COMPLEX",
        "OPERATION_RESOLUTION_FAILURE",
        "PERSISTED_QUERY_NOT_FOUND",
        "PERSISTED_QUERY_NOT_IN_LIST",
    }
)
GRAPHQL_RESPONSE = "application/graphql-response+json"


def _outcome(result: ExecutionResult) -> str:
    if result.data is not None:
        return "partial"
    pre_execution = all(
        error.path is None and (error.extensions or {}).get("code") in _PRE_EXECUTION_CODES
        for error in result.errors or ()
    )
    return "rejected" if pre_execution else "error"


def _accept_items(accept: str) -> list[tuple[str, float]]:
    """An Accept header's items in order: (the item as written, its quality; 0 if unreadable)."""
    items = []
    for part in accept.split(","):
        if not part.strip():
            continue
        _, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        items.append((part.strip(), quality))
    return items


def _media(item: str) -> str:
    return item.split(";", 1)[0].strip().lower()


def _accepts(accept: str, media_type: str) -> bool:
    """Whether an Accept header names `media_type` (at any non-zero quality)."""
    for item, quality in _accept_items(accept):
        if _media(item) == media_type:
            return quality > 0
    return False


def _response_media_type(scope: Scope) -> str:
    accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
    if _accepts(accept, GRAPHQL_RESPONSE):
        return f"{GRAPHQL_RESPONSE}; charset=utf-8"
    return "application/json"


def _operation_name(scope: Scope, body: bytes) -> str | None:
    """The request's operationName, for metrics of requests answered without executing."""
    if scope["method"] == "GET":
        names = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("operationName")
        return names[0] if names else None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    name = payload.get("operationName") if isinstance(payload, dict) else None
    return name if isinstance(name, str) else None


def _normalized_media_types(scope: Scope) -> Scope:
    """Media types are case-insensitive (RFC 9110), strawberry compares them as written."""
    headers = scope["headers"]
    if not any(n in (b"content-type", b"accept") and v != v.lower() for n, v in headers):
        return scope
    normalized = [
        (name, _lower_media_types(value) if name in (b"content-type", b"accept") else value)
        for name, value in headers
    ]
    return {**scope, "headers": normalized}


def _lower_media_types(value: bytes) -> bytes:
    # Only the types and parameter names: a boundary parameter's value is case-sensitive.
    parts = []
    for item in value.split(b","):
        media, *params = item.split(b";")
        lowered = [media.lower()]
        for param in params:
            name, equals, rest = param.partition(b"=")
            lowered.append(name.lower() + equals + rest)
        parts.append(b";".join(lowered))
    return b",".join(parts)


def _multipart(scope: Scope) -> bool:
    """A multipart request (uploads): streamed to the form parser, which spools files to
    disk, never buffered whole here."""
    content_type: bytes = dict(scope["headers"]).get(b"content-type", b"")
    return content_type.startswith(b"multipart/form-data")


def _replayable(scope: Scope) -> bool:
    """Queries over GET or POST from API clients; never the IDE page, other methods, or a
    multipart request (its body is not read here, so it could not be part of the key)."""
    if scope["method"] not in ("GET", "POST") or _multipart(scope):
        return False
    accept = dict(scope["headers"]).get(b"accept", b"")
    return b"text/html" not in accept


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _persisted_refusal(exc: SessionGraphError, media_type: str) -> Response:
    # Apollo's clients expect PERSISTED_QUERY_NOT_FOUND with 200 whatever the media type.
    not_found = exc.code == "PERSISTED_QUERY_NOT_FOUND"
    status = 200 if not_found or media_type == "application/json" else 400
    response = graphql_error_response(status, exc.message, exc.code)
    response.headers["content-type"] = media_type
    response.headers["cache-control"] = NOT_FOUND_CACHE_CONTROL if not_found else NO_STORE
    return response


def _without_body(send: Send) -> Send:
    async def send_headers_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_headers_only


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class Readiness:
    """Answers `/readyz` from cheap TCP reachability checks, cached briefly.

    A TCP connect costs nothing against the upstreams' request budgets, unlike an API call.
    """

    def __init__(
        self,
        statuses: dict[str, UpstreamStatus],
        sandbox: bool,
        cache: ResponseCache,
        catalogue: Catalogue | None = None,
        quota: DailyQuota | None = None,
    ) -> None:
        self.statuses = statuses
        self.sandbox = sandbox
        self.cache = cache
        self.catalogue = catalogue
        self.quota = quota
        self._memo: tuple[float, dict[str, Any], bool] | None = None

    async def endpoint(self, _request: Request) -> Response:
        now = time.monotonic()
        if self._memo is None or now - self._memo[0] > 5:
            body, ready = await self._check()
            self._memo = (now, body, ready)
        _, body, ready = self._memo
        # Cache and quota figures change with every request; never served from the 5 s memo.
        cache = self.cache
        body = {
            **body,
            "openf1Catalogue": (
                self.catalogue.status() if self.catalogue is not None else {"enabled": False}
            ),
            "cache": {
                "backend": cache.backend.name if cache.backend is not None else "none",
                "upstreams": {name: dict(counts) for name, counts in cache.stats.items()},
            },
            # The server's own key; a read of the shared count, never a Guidebook request.
            "guidebookQuota": (
                await self.quota.status() if self.quota is not None else {"enabled": False}
            ),
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def _check(self) -> tuple[dict[str, Any], bool]:
        statuses = list(self.statuses.values())
        reachable = await asyncio.gather(*(self._reachable(s) for s in statuses))
        upstreams: dict[str, Any] = {}
        ready = True
        for status, ok in zip(statuses, reachable, strict=True):
            entry: dict[str, Any] = {
                "configured": status.configured,
                "reachable": ok if status.configured else None,
                "baseUrl": status.base_url,
            }
            if status.reason and not status.configured:
                entry["reason"] = status.reason
            if status.configured and not ok:
                ready = False
            upstreams[status.name] = entry
        body: dict[str, Any] = {"status": "ready" if ready else "degraded", "upstreams": upstreams}
        if self.sandbox:
            body["sandbox"] = {s.name: s.base_url for s in statuses if s.configured}
        return body, ready

    @staticmethod
    async def _reachable(status: UpstreamStatus) -> bool:
        if not status.configured or not status.base_url:
            return False
        parts = urlsplit(status.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(2):
                _, writer = await asyncio.open_connection(parts.hostname, port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


async def _http_error(_request: Request, exc: Exception) -> Response:
    """404 and 405 in GraphQL's error shape, with their code (and `Allow` for 405)."""
    status = getattr(exc, "status_code", 404)
    headers = dict(getattr(exc, "headers", None) or {})
    message = "Not found" if status == 404 else "Method not allowed"
    return graphql_error_response(status, message, _HTTP_ERROR_CODES[status], headers=headers)


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def metrics_route(quota: DailyQuota | None) -> Callable[[Request], Awaitable[Response]]:
    """`/metrics`, the quota gauges read afresh first: the day may have turned, or other
    workers and machines may have spent from the shared count since this one last did."""

    async def endpoint(request: Request) -> Response:
        if quota is not None:
            await quota.usage()
        return await metrics_endpoint(request)

    return endpoint


def build_persisted_queries(settings: Settings, providers: Providers) -> PersistedQueries:
    """Raises TrustedDocumentsError at start-up for a file that cannot be used."""
    trusted = (
        TrustedDocuments.load(settings.persisted_documents_file)
        if settings.persisted_documents_file is not None
        else None
    )
    return PersistedQueries(
        providers.cache.backend,
        apq=settings.persisted_queries,
        trusted=trusted,
        only_trusted=settings.persisted_documents_only,
        max_entries=settings.persisted_queries_max_entries,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    tracing.enable(settings.tracing)
    providers = build_providers(settings)
    schema = build_schema(settings)
    live = build_live(settings, providers)
    view = GraphQLView(
        schema, settings, providers, build_persisted_queries(settings, providers), live
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await providers.start()
        try:
            yield
        finally:
            await live.close()
            await providers.close()

    middleware = [
        Middleware(
            RequestGuard,
            max_bytes=settings.max_body_bytes,
            max_multipart_bytes=settings.max_body_bytes + settings.max_upload_bytes,
            body_seconds=settings.body_read_timeout_seconds,
        )
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
                allow_headers=list(CORS_REQUEST_HEADERS),
                max_age=settings.cors_max_age_seconds,
                expose_headers=["X-Request-ID", "ETag"],
            )
        )
    routes: list[BaseRoute] = [
        Route("/graphql", view, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", view),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_route(providers.guidebook_quota), methods=["GET"]),
        Route(
            "/readyz",
            Readiness(
                providers.statuses,
                settings.sandbox,
                providers.cache,
                providers.openf1.catalogue,
                providers.guidebook_quota,
            ).endpoint,
            methods=["GET"],
        ),
    ]
    if settings.guidebook_webhook_token is not None:
        # Without a token the path does not exist: the same 404 as any unknown path.
        webhooks = GuidebookWebhooks(
            settings.guidebook_webhook_token, providers.guidebook, providers.cache.backend
        )
        routes.append(Route(GUIDEBOOK_WEBHOOK_PATH, webhooks.endpoint, methods=["POST"]))
    if settings.graphiql:
        routes.append(assets_mount())
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    # Starlette would answer `/graphql/` with a redirect built from the Host header.
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.providers = providers
    app.state.live = live
    app.state.schema = schema
    return app


def create_served_app() -> Starlette:
    """The factory uvicorn imports in every worker: settings and logging from the environment."""
    from .logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    # What is alive now (modules, the schema, the emulators' data) lives as long as the worker:
    # frozen, the collector's full passes stop walking it (they took ~60 ms each, ~15 % of a
    # busy worker's time on the season query).
    gc.collect()
    gc.freeze()
    return app
