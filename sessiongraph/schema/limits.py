"""Depth and alias limits measured once per distinct document, not once per request.

strawberry's QueryDepthLimiter and MaxAliasesLimiter add validation rules built afresh for
every request, which defeats the validation cache; this extension keeps that cache effective.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

__all__ = ["QueryLimits", "measure"]

_MEASURED: OrderedDict[str, tuple[int, int]] = OrderedDict()
_MEASURED_MAX = 512


def measure(document: DocumentNode) -> tuple[int, int]:
    """(deepest field nesting of any operation, aliases in the whole document).

    Introspection fields (`__schema`, `__type`) do not count towards depth: every
    GraphQL client's schema query nests `ofType` deeper than any sane data query.
    """
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    aliases = 0

    def depth(selection_set: SelectionSetNode | None, seen: frozenset[str]) -> int:
        nonlocal aliases
        if selection_set is None:
            return 0
        deepest = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.alias is not None:
                    aliases += 1
                if selection.name.value.startswith("__"):
                    continue
                deepest = max(deepest, 1 + depth(selection.selection_set, seen))
            elif isinstance(selection, InlineFragmentNode):
                deepest = max(deepest, depth(selection.selection_set, seen))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in seen:
                    deepest = max(deepest, depth(fragment.selection_set, seen | {name}))
        return deepest

    deepest = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            deepest = max(deepest, depth(definition.selection_set, frozenset()))
    return deepest, aliases


class QueryLimits(SchemaExtension):
    """Refuses documents nested deeper than `max_depth` or with more than `max_aliases` aliases.

    Must come after ValidationCache, whose result it reads: only valid documents are measured.
    """

    def __init__(self, max_depth: int, max_aliases: int) -> None:
        super().__init__()
        self.max_depth = max_depth
        self.max_aliases = max_aliases

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if context.pre_execution_errors == [] and document is not None:
            depth, aliases = self._measured(context.query or "", document)
            errors = []
            if depth > self.max_depth:
                errors.append(f"Query depth {depth} exceeds the maximum of {self.max_depth}")
            if aliases > self.max_aliases:
                errors.append(f"Query uses {aliases} aliases; the maximum is {self.max_aliases}")
            if errors:
                context.pre_execution_errors = [
                    GraphQLError(message, extensions={"code": "QUERY_TOO_COMPLEX"})
                    for message in errors
                ]
        yield

    @staticmethod
    def _measured(query: str, document: DocumentNode) -> tuple[int, int]:
        found = _MEASURED.get(query)
        if found is None:
            found = measure(document)
            _MEASURED[query] = found
            if len(_MEASURED) > _MEASURED_MAX:
                _MEASURED.popitem(last=False)
        else:
            _MEASURED.move_to_end(query)
        return found
