"""Assembles the strawberry Schema with its limits, error coding and scalars."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from ..config import Settings
from ..errors import SessionGraphError
from .credentials import QueryCredential
from .errors import ErrorCodes
from .limits import QueryLimits
from .mutation import Mutation
from .query import Query
from .scalars import DATETIME_SCALAR

__all__ = ["SessionGraphSchema", "build_schema"]

logger = logging.getLogger("sessiongraph.graphql")


class SessionGraphSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Client mistakes and upstream trouble are expected: log them briefly, without
        # tracebacks. Unexpected errors were already logged in full by ErrorCodes.
        for error in errors:
            original = error.original_error
            if isinstance(original, SessionGraphError):
                logger.info(
                    "field error",
                    extra={"code": original.code, "path": error.path, "detail": original.message},
                )
            elif original is None:
                logger.info("request error", extra={"detail": error.message})


def build_schema(settings: Settings | None = None) -> SessionGraphSchema:
    settings = settings or Settings()
    # Factories, not instances: strawberry builds fresh extensions for every request.
    # The parser and validation caches live at module level, so they still span requests.
    extensions: list[Callable[[], SchemaExtension]] = [
        ErrorCodes,
        partial(ParserCache, maxsize=256),
        partial(ValidationCache, maxsize=256),
        partial(
            QueryLimits,
            max_depth=settings.max_query_depth,
            max_aliases=settings.max_aliases,
            max_cost=settings.max_query_cost,
            default_list_size=settings.cost_default_list_size,
        ),
        partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    if settings.require_token_for_queries:
        extensions.append(QueryCredential)
    return SessionGraphSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(
            scalar_map={datetime.datetime: DATETIME_SCALAR},
            batching_config=(
                {"max_operations": settings.max_batch_operations}
                if settings.query_batching
                else None
            ),
        ),
    )
