"""Gives every GraphQL error an `extensions.code` and masks unexpected ones."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from .. import requestctx
from ..cache import spoil_trace
from ..errors import SessionGraphError

__all__ = ["ErrorCodes", "classify", "coded"]

logger = logging.getLogger("sessiongraph.graphql")

MASKED_MESSAGE = "Internal server error."
_LIMIT_MESSAGES = re.compile(
    r"exceeds maximum operation depth|aliases found\. Allowed|more than \d+ tokens|"
    r"Token limit|Maximum (?:cost|page size)"
)
_VARIABLE_MESSAGES = re.compile(r"^Variable '\$[^']+'")
# A scalar's own parser refused a literal (a DateTime out of range): well-formed GraphQL
# with an argument value that cannot be right, like a bad variable value.
_SCALAR_MESSAGES = re.compile(r"^Expected value of type '[^']+', but encountered error ")


def classify(error: GraphQLError) -> str:
    """The code for an error graphql-core or strawberry raised before or around execution."""
    if _LIMIT_MESSAGES.search(error.message):
        return "QUERY_TOO_COMPLEX"
    if error.message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if _VARIABLE_MESSAGES.match(error.message) or _SCALAR_MESSAGES.match(error.message):
        return "BAD_USER_INPUT"
    if error.path is None:
        return "GRAPHQL_VALIDATION_FAILED"
    return "INTERNAL_SERVER_ERROR"


class ErrorCodes(SchemaExtension):
    """Codes client mistakes, keeps our coded errors, masks the rest (details go to the log)."""

    def on_operation(self) -> Iterator[None]:
        yield
        facts = requestctx.current()
        if facts is not None:
            facts.operation = self.execution_context.operation_name
        with contextlib.suppress(RuntimeError):  # no operation type for unparsable documents
            if self.execution_context.operation_type is not OperationType.QUERY:
                spoil_trace()  # mutations are never replayed from the result cache
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [coded(error) for error in errors]


def coded(error: GraphQLError) -> GraphQLError:
    """The error as clients see it: ours as raised, client mistakes coded, the rest masked."""
    original = error.original_error
    if isinstance(original, SessionGraphError):
        return error
    # Errors without a path come from parsing or validation (e.g. a scalar literal its
    # parser refused): the client's mistake, shown as is. Only resolver failures are masked.
    if original is not None and not isinstance(original, GraphQLError) and error.path:
        logger.error(
            "unexpected error in a resolver", exc_info=original, extra={"path": error.path}
        )
        return GraphQLError(
            MASKED_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR"},
        )
    if "code" not in (error.extensions or {}):
        error.extensions = {**(error.extensions or {}), "code": classify(error)}
    return error
