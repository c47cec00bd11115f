"""Errors a resolver reports beside the data it still returns (partial results of one field).

graphql-core records an error only when a field raises, which nulls the field; `report` keeps
the field's data and the extension adds the reported errors to the response.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from ..errors import SessionGraphError
from .context import Info

__all__ = ["ReportedErrors", "report"]

logger = logging.getLogger("sessiongraph.graphql")


def report(info: Info, error: SessionGraphError) -> None:
    """Adds `error` at the current field's path; the field's own value is kept."""
    path = info.path.as_list()
    logger.info("partial field error", extra={"code": error.code, "path": path, "detail": error})
    info.context.reported_errors.append(
        GraphQLError(
            error.message,
            nodes=info._raw_info.field_nodes,
            path=path,
            original_error=error,
            extensions=error.extensions,
        )
    )


class ReportedErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        reported = getattr(self.execution_context.context, "reported_errors", None)
        result = self.execution_context.result
        if reported and result is not None:
            result.errors = [*(result.errors or ()), *reported]
