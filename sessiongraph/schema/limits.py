"""Depth, alias and cost limits measured once per distinct document, not once per request.

strawberry's QueryDepthLimiter and MaxAliasesLimiter add validation rules built afresh for
every request, which defeats the validation cache; this extension keeps that cache effective.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
)
from strawberry.extensions import SchemaExtension

__all__ = ["QueryLimits", "estimate_cost", "measure"]

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


def _first(field: FieldNode, variables: dict[str, Any]) -> int | None:
    for argument in field.arguments or ():
        if argument.name.value != "first":
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            given = variables.get(value.name.value)
            return given if isinstance(given, int) else None
    return None


def estimate_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: dict[str, Any],
    default_list_size: int,
) -> int:
    """Fields that may be fetched: each field costs 1, and a list multiplies its subtree.

    A list's size is its `first` argument, else `default_list_size`; lists inside a field that
    took `first` (a connection's `edges`/`nodes`) are already counted by it.
    """
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }

    def cost(
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType | None,
        sized: bool,
        seen: frozenset[str],
    ) -> int:
        if selection_set is None or not isinstance(
            parent, GraphQLObjectType | GraphQLInterfaceType
        ):
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                definition = parent.fields.get(selection.name.value)
                if definition is None or selection.name.value.startswith("__"):
                    continue
                first = _first(selection, variables)
                is_list = isinstance(get_nullable_type(definition.type), GraphQLList)
                size = (
                    first
                    if first is not None
                    else (default_list_size if is_list and not sized else 1)
                )
                inner = cost(
                    selection.selection_set,
                    get_named_type(definition.type),
                    first is not None,
                    seen,
                )
                total += 1 + max(size, 0) * inner
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                branch = schema.get_type(condition.name.value) if condition else parent
                total += cost(selection.selection_set, branch, sized, seen)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None and fragment.name.value not in seen:
                    branch = schema.get_type(fragment.type_condition.name.value)
                    total += cost(
                        fragment.selection_set, branch, sized, seen | {fragment.name.value}
                    )
        return total

    roots = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }
    return max(
        (
            cost(d.selection_set, roots[d.operation], False, frozenset())
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
        ),
        default=0,
    )


class QueryLimits(SchemaExtension):
    """Refuses documents nested deeper than `max_depth` or with more than `max_aliases` aliases.

    Must come after ValidationCache, whose result it reads: only valid documents are measured.
    """

    def __init__(
        self, max_depth: int, max_aliases: int, max_cost: int = 0, default_list_size: int = 20
    ) -> None:
        super().__init__()
        self.max_depth = max_depth
        self.max_aliases = max_aliases
        self.max_cost = max_cost
        self.default_list_size = default_list_size

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
            if self.max_cost and not errors:
                cost = estimate_cost(
                    context.schema._schema,
                    document,
                    context.variables or {},
                    self.default_list_size,
                )
                if cost > self.max_cost:
                    errors.append(
                        f"Query cost {cost} exceeds the maximum of {self.max_cost} (each field "
                        f"costs 1; lists multiply by `first`, or {self.default_list_size})"
                    )
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
