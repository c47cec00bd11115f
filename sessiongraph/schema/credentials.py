"""REQUIRE_TOKEN_FOR_QUERIES: queries then need the mutations' bearer token too."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from ..auth import check_bearer
from ..errors import SessionGraphError

__all__ = ["QueryCredential"]


class QueryCredential(SchemaExtension):
    """Refuses queries without a configured token before they run (mutations check their own)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors == [] and context.operation_type is OperationType.QUERY:
            request = getattr(context.context, "request", None)
            header = request.headers.get("authorization") if request is not None else None
            hashes = context.context.settings.api_token_hashes
            try:
                check_bearer(header, hashes)
            except SessionGraphError as exc:
                context.pre_execution_errors = [
                    GraphQLError(exc.message, original_error=exc, extensions=exc.extensions)
                ]
        yield
