"""Assembles the strawberry Schema with its limits, error coding and scalars."""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, Literal

import strawberry
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, parse
from strawberry.extensions import (
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
)
from strawberry.federation.schema import FederationAny
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types import ExecutionResult as StrawberryExecutionResult

from ..config import Settings
from ..errors import BadUserInput, SessionGraphError
from ..resolvers.subscriptions import take_cursor
from .context import Info
from .credentials import QueryCredential
from .errors import ErrorCodes, coded
from .execution import PlainObjectsExecutor, skip_null_defaults
from .limits import DocumentGuard, DocumentLimits
from .mutation import Mutation
from .nodes import resolve_entity
from .query import Query
from .reported import ReportedErrors
from .scalars import DATETIME_SCALAR
from .series import COLUMN_SCALARS
from .subscription import Subscription

__all__ = ["SessionGraphSchema", "build_schema"]

logger = logging.getLogger("sessiongraph.graphql")

# Apollo Router and Hive Gateway both compose it; newer versions add nothing we use.
FEDERATION_VERSION: Literal["2.7"] = "2.7"
# Errors of one response logged one by one; the rest are summarised in one line.
_LOGGED_ERRORS = 10


class SessionGraphSchema(strawberry.federation.Schema):
    """A federation v2 subgraph: `_service` and `_entities` beside our own root fields."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Client mistakes and upstream trouble are expected: log them briefly, without
        # tracebacks. Unexpected errors were already logged in full by ErrorCodes. A response
        # with thousands of failed items gets a few lines and one summary, not a line each.
        counts: Counter[str] = Counter()
        for error in errors:
            original = error.original_error
            if isinstance(original, SessionGraphError):
                code, message, detail = original.code, "field error", original.message
            elif original is None:
                code = (error.extensions or {}).get("code", "REQUEST")
                message, detail = "request error", error.message
            else:
                continue
            counts[code] += 1
            if counts.total() <= _LOGGED_ERRORS:
                logger.info(message, extra={"code": code, "path": error.path, "detail": detail})
        if counts.total() > _LOGGED_ERRORS:
            logger.info(
                "more errors in this response",
                extra={"unlogged": counts.total() - _LOGGED_ERRORS, "codes": dict(counts)},
            )

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        """Every transport's subscription events carry `extensions.cursor`, the event's place
        in its topic (SSE also sends it as the event's `id`), to resume from; a subscription
        that fails (before its first event or later) ends with one coded error event."""
        result = await super().stream(*args, **kwargs)
        if not hasattr(result, "__aiter__"):
            return result
        query = kwargs.get("query", args[0] if args else None)
        return self._events(result, query, kwargs.get("operation_name"))

    async def _events(
        self, results: Any, query: str | None, operation_name: str | None
    ) -> AsyncIterator[Any]:
        try:
            async for result in results:
                cursor = take_cursor()
                if cursor is not None and hasattr(result, "extensions"):
                    result.extensions = {**(result.extensions or {}), "cursor": cursor}
                yield result
        except Exception as exc:
            # strawberry would close the stream with a bare `complete`: the client would never
            # learn why (a session that does not exist, a limit, an upstream gone).
            error = coded(
                GraphQLError(
                    str(exc) if isinstance(exc, SessionGraphError) else "subscription failed",
                    path=[_root_key(query, operation_name)],
                    original_error=exc,
                )
            )
            self.process_errors([error])
            yield StrawberryExecutionResult(data=None, errors=[error])
        finally:
            await results.aclose()

    def entities_resolver(
        self, info: Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        # Not strawberry's: it fails the whole field on a representation without a known
        # `__typename`, which any client can send. Here such an item gets BAD_USER_INPUT and
        # the rest load together through the loaders (graphql-core awaits the items at once).
        return [_entity(info, representation) for representation in representations]


def _entity(info: Info, representation: object) -> Any:
    if not isinstance(representation, dict) or not isinstance(
        representation.get("__typename"), str
    ):
        return BadUserInput("a representation is an object with a `__typename`")
    fields = {key: value for key, value in representation.items() if key != "__typename"}
    return resolve_entity(info, representation["__typename"], fields)


def build_schema(settings: Settings | None = None) -> SessionGraphSchema:
    settings = settings or Settings()
    # Factories, not instances: strawberry builds fresh extensions for every request.
    # The parser and validation caches live at module level, so they still span requests.
    limits = DocumentLimits(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_cost=settings.max_query_cost,
        default_list_size=settings.cost_default_list_size,
        max_lookups=settings.max_lookups_per_request,
        max_string_length=settings.max_string_argument_length,
    )
    extensions: list[Callable[[], SchemaExtension]] = [
        ErrorCodes,
        ReportedErrors,
        partial(ParserCache, maxsize=256),
        partial(DocumentGuard, limits),
        partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    if settings.require_token_for_queries:
        extensions.append(QueryCredential)
    schema = SessionGraphSchema(
        query=Query,
        federation_version=FEDERATION_VERSION,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=PlainObjectsExecutor,
        config=StrawberryConfig(
            scalar_map={datetime.datetime: DATETIME_SCALAR, **COLUMN_SCALARS},
            # @defer and @stream over multipart/mixed: a page shows the fast part first.
            enable_experimental_incremental_execution=True,
            batching_config=(
                {"max_operations": settings.max_batch_operations}
                if settings.query_batching
                else None
            ),
        ),
    )
    skip_null_defaults(schema._schema)
    return schema


def _root_key(query: str | None, operation_name: str | None) -> str:
    """The response key of a subscription's (single) root field, for its error's path."""
    try:
        document = parse(query or "")
    except GraphQLError:
        return "subscription"
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            operation_name is None or (definition.name and definition.name.value == operation_name)
        ):
            for selection in definition.selection_set.selections:
                if isinstance(selection, FieldNode):
                    return (selection.alias or selection.name).value
    return "subscription"
