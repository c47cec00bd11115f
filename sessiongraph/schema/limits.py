"""Document limits (depth, aliases, cost, lookups, string lengths) checked before validation.

Every analysis visits each fragment once, whatever the number of its spreads, so its work
is linear in the document; validation itself then runs off the event loop for large documents.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FloatValueNode,
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
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from .. import requestctx
from .ordering import MAX_LIMIT
from .scalars import parse_datetime

__all__ = [
    "DocumentGuard",
    "DocumentLimits",
    "Estimate",
    "estimate",
    "measure",
    "operation_resolution_errors",
]

# Above any limit a server would configure; keeps sums of exponential shapes small integers.
_CAP = 10**15
_MEASURED: OrderedDict[str, tuple[int, int]] = OrderedDict()
_VALIDATED: OrderedDict[tuple[int, Any, str], list[GraphQLError]] = OrderedDict()
_MEMO_MAX = 512
K = TypeVar("K")
V = TypeVar("V")
# One thread: a flood of large documents competes with the event loop for at most one share
# of the GIL, so /healthz and cached queries keep answering while they are validated.
_VALIDATOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sessiongraph-validate")
# Documents shorter than this validate inline: a thread hop costs more than their validation.
_INLINE_VALIDATION_CHARS = 1500

# Root fields that fetch objects by identity, and the argument listing them (None: one object).
_LOOKUP_FIELDS: Mapping[str, str | None] = {
    "nodes": "ids",
    "_entities": "representations",
    "node": None,
    "meeting": None,
    "f1Session": None,
    "guide": None,
    "guidebookSession": None,
    "connection": None,
    "sqlRaceSession": None,
}


@dataclass(frozen=True)
class DocumentLimits:
    max_depth: int
    max_aliases: int
    max_cost: int = 0  # 0: no cost limit
    default_list_size: int = 20
    max_lookups: int = 0  # per HTTP request, across a batch's operations; 0: no limit
    max_string_length: int = 0  # of any string argument of a query; 0: no limit


@dataclass(frozen=True)
class Estimate:
    cost: int
    lookups: int  # objects fetched by identity: `nodes` ids, `_entities` representations, …


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def measure(document: DocumentNode) -> tuple[int, int]:
    """(deepest field nesting of any operation, aliases written in the document).

    Introspection fields (`__schema`, `__type`) do not count towards depth: every
    GraphQL client's schema query nests `ofType` deeper than any sane data query.
    """
    fragments = _fragments(document)
    memo: dict[str, int] = {}

    def fragment_depth(name: str) -> int:
        if name not in memo:
            memo[name] = 0  # a cycle (refused by validation) adds nothing
            fragment = fragments.get(name)
            if fragment is not None:
                memo[name] = depth(fragment.selection_set)
        return memo[name]

    def depth(selection_set: SelectionSetNode | None) -> int:
        deepest = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                if not selection.name.value.startswith("__"):
                    deepest = max(deepest, 1 + depth(selection.selection_set))
            elif isinstance(selection, InlineFragmentNode):
                deepest = max(deepest, depth(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                deepest = max(deepest, fragment_depth(selection.name.value))
        return deepest

    deepest = max(
        (
            depth(d.selection_set)
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
        ),
        default=0,
    )
    aliases = sum(1 for node in _field_nodes(document) if node.alias is not None)
    return deepest, aliases


def _field_nodes(document: DocumentNode) -> Iterable[FieldNode]:
    """Every field written in the document, once each (fragments are not expanded)."""
    pending = [
        d.selection_set
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                pending.append(selection.selection_set)


def _argument(field: FieldNode, name: str) -> ValueNode | None:
    for argument in field.arguments or ():
        if argument.name.value == name:
            return argument.value
    return None


def _int_argument(field: FieldNode, name: str, variables: Mapping[str, Any]) -> int | None:
    value = _argument(field, name)
    if isinstance(value, IntValueNode):
        return int(value.value) if len(value.value) < 20 else _CAP
    if isinstance(value, VariableNode):
        given = variables.get(value.name.value)
        return given if isinstance(given, int) and not isinstance(given, bool) else None
    return None


# Sampled series and their rates (samples a second); a series costs its samples / 100, about
# what a hundred of them cost to serialize next to one object field.
_SERIES_RATES: Mapping[str, float] = {"carData": 3.7, "carLocation": 3.7}
_SAMPLES_PER_COST = 100
# Without a window a series spans a whole session; races and long tests last about 2 h.
_DEFAULT_SPAN_SECONDS = 2 * 3600


def _series_cost(field: FieldNode, rate: float, variables: Mapping[str, Any]) -> int:
    span = _DEFAULT_SPAN_SECONDS
    start, end = (_instant_argument(field, n, variables) for n in ("from", "to"))
    if start is not None and end is not None and end > start:
        span = min(span * 12, int((end - start).total_seconds()))
    every = _float_argument(field, "everySeconds", variables)
    per_second = min(rate, 1 / every) if every and every > 0 else rate
    return int(span * per_second) // _SAMPLES_PER_COST


def _instant_argument(field: FieldNode, name: str, variables: Mapping[str, Any]) -> datetime | None:
    node = _argument(field, name)
    value: Any = None
    if isinstance(node, VariableNode):
        value = variables.get(node.name.value)
    elif isinstance(node, StringValueNode):
        value = node.value
    try:
        return parse_datetime(value)  # as the DateTime scalar reads it
    except ValueError:
        return None


def _float_argument(field: FieldNode, name: str, variables: Mapping[str, Any]) -> float | None:
    value = _argument(field, name)
    if isinstance(value, VariableNode):
        given = variables.get(value.name.value)
        return float(given) if isinstance(given, int | float) else None
    if isinstance(value, IntValueNode | FloatValueNode) and len(value.value) < 30:
        return float(value.value)
    return None


def _list_length(value: ValueNode | None, variables: Mapping[str, Any]) -> int:
    if isinstance(value, ListValueNode):
        return len(value.values)
    if isinstance(value, VariableNode):
        given = variables.get(value.name.value)
        return len(given) if isinstance(given, list) else 1
    return 1  # a single value stands for a list of one


def selected_operations(
    document: DocumentNode, operation_name: str | None
) -> list[OperationDefinitionNode]:
    """The operation that will run when it can be told, else every operation (conservative)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name and o.name and o.name.value == operation_name]
    return chosen or operations


def operation_resolution_errors(
    document: DocumentNode, operation_name: str | None
) -> list[GraphQLError]:
    """The spec's GetOperation: an operationName the document lacks, or several operations
    and no name to choose by, is the request's error (never "run the first one")."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    message = None
    if operation_name is not None:
        if not any(o.name and o.name.value == operation_name for o in operations):
            message = f"The document has no operation named {operation_name[:100]!r}"
    elif len(operations) > 1:
        message = (
            "The document has several operations: send `operationName` to choose the one to run"
        )
    if message is None:
        return []
    return [GraphQLError(message, extensions={"code": "OPERATION_RESOLUTION_FAILURE"})]


def estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any],
    default_list_size: int,
    operation_name: str | None = None,
) -> Estimate:
    """Fields that may be fetched: each field costs 1, and a list multiplies its subtree.

    A list's size is its `first` (or `limit`) argument, the number of ids or representations
    for lookups, else `default_list_size`; lists inside a field that took `first` (a
    connection's `edges`/`nodes`) are already counted by it. Each spread of a fragment costs
    its whole subtree again, which over-counts a fragment spread twice in one selection.
    """
    costs = _Costs(schema, document, variables, default_list_size)
    roots = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }
    estimates = [
        costs.of(d.selection_set, roots[d.operation], False)
        for d in selected_operations(document, operation_name)
    ]
    return Estimate(
        cost=max((c for c, _ in estimates), default=0),
        lookups=max((n for _, n in estimates), default=0),
    )


class _Costs:
    """(cost, lookups) of selection sets in one document. A class, not nested functions that
    call each other: those would be a reference cycle left for the garbage collector."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: Mapping[str, Any],
        default_list_size: int,
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.default_list_size = default_list_size
        self.fragments = _fragments(document)
        self.memo: dict[tuple[str, bool], tuple[int, int]] = {}

    def fragment(self, name: str, sized: bool) -> tuple[int, int]:
        memo = self.memo
        key = (name, sized)
        if key not in memo:
            memo[key] = (0, 0)  # a cycle (refused by validation) adds nothing
            fragment = self.fragments.get(name)
            if fragment is not None:
                branch = self.schema.get_type(fragment.type_condition.name.value)
                memo[key] = self.of(fragment.selection_set, branch, sized)
        return memo[key]

    def of(
        self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None, sized: bool
    ) -> tuple[int, int]:
        if selection_set is None or not isinstance(
            parent, GraphQLObjectType | GraphQLInterfaceType
        ):
            return 0, 0
        total = lookups = 0
        at_root = parent is self.schema.query_type
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                definition = parent.fields.get(name)
                if definition is None or name.startswith("__"):
                    continue
                first = _int_argument(selection, "first", self.variables)
                # A connection's `first` sizes its edges/nodes; a plain list's `limit` only
                # itself (a larger one is refused when it runs, so it costs the largest).
                connection = first is not None
                if first is None:
                    limit = _int_argument(selection, "limit", self.variables)
                    first = min(limit, MAX_LIMIT) if limit is not None else None
                is_list = isinstance(get_nullable_type(definition.type), GraphQLList)
                if at_root and name in _LOOKUP_FIELDS:
                    listed = _LOOKUP_FIELDS[name]
                    count = (
                        _list_length(_argument(selection, listed), self.variables) if listed else 1
                    )
                    lookups += count
                    size = count
                elif first is not None:
                    size = first
                else:
                    size = self.default_list_size if is_list and not sized else 1
                inner, _ = self.of(
                    selection.selection_set, get_named_type(definition.type), connection
                )
                total += 1 + max(size, 0) * inner
                rate = _SERIES_RATES.get(name)
                if name == "samples":
                    hz = _float_argument(selection, "frequencyHz", self.variables) or 0.0
                    channels = _list_length(_argument(selection, "parameters"), self.variables)
                    rate = max(0.0, min(hz, 10_000.0)) * max(channels, 1)
                if rate is not None:
                    total += _series_cost(selection, rate, self.variables)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                branch = self.schema.get_type(condition.name.value) if condition else parent
                more, found = self.of(selection.selection_set, branch, sized)
                total, lookups = total + more, lookups + found
            elif isinstance(selection, FragmentSpreadNode):
                more, found = self.fragment(selection.name.value, sized)
                total, lookups = total + more, lookups + found
        return min(total, _CAP), min(lookups, _CAP)


def _long_string(
    document: DocumentNode, variables: Mapping[str, Any], limit: int
) -> tuple[str, int] | None:
    """(argument name, length) of the first string argument longer than `limit`."""
    for field in _field_nodes(document):
        for argument in field.arguments or ():
            found = _long_literal(argument, argument.value, limit)
            if found is not None:
                return found
    for name, value in variables.items():
        found = _long_value(f"${name}", value, limit)
        if found is not None:
            return found
    return None


def _long_literal(argument: ArgumentNode, value: ValueNode, limit: int) -> tuple[str, int] | None:
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, StringValueNode) and len(node.value) > limit:
            return argument.name.value, len(node.value)
        if isinstance(node, ListValueNode):
            pending.extend(node.values)
        elif isinstance(node, ObjectValueNode):
            pending.extend(f.value for f in node.fields)
    return None


def _long_value(name: str, value: Any, limit: int) -> tuple[str, int] | None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and len(item) > limit:
            return name, len(item)
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
    return None


def _too_complex(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "QUERY_TOO_COMPLEX"})


def check_limits(
    schema: GraphQLSchema,
    query: str,
    document: DocumentNode,
    variables: Mapping[str, Any],
    operation_name: str | None,
    limits: DocumentLimits,
) -> tuple[list[GraphQLError], int]:
    """The limit errors of one operation, and the lookups it would make."""
    depth, aliases = _memoized(_MEASURED, query, lambda: measure(document))
    errors = []
    if depth > limits.max_depth:
        errors.append(
            _too_complex(f"Query depth {depth} exceeds the maximum of {limits.max_depth}")
        )
    if aliases > limits.max_aliases:
        errors.append(
            _too_complex(f"Query uses {aliases} aliases; the maximum is {limits.max_aliases}")
        )
    if errors:
        return errors, 0
    found = estimate(schema, document, variables, limits.default_list_size, operation_name)
    if limits.max_cost and found.cost > limits.max_cost:
        shown = f"{found.cost}" if found.cost < _CAP else f"over {_CAP}"
        errors.append(
            _too_complex(
                f"Query cost {shown} exceeds the maximum of {limits.max_cost} (each field "
                f"costs 1; lists multiply by `first`, the number of ids, or "
                f"{limits.default_list_size})"
            )
        )
    operations = selected_operations(document, operation_name)
    if limits.max_string_length and all(
        o.operation is not OperationType.MUTATION for o in operations
    ):
        long = _long_string(document, variables, limits.max_string_length)
        if long is not None:
            errors.append(
                GraphQLError(
                    f"`{long[0]}` is {long[1]} characters long; string arguments of queries "
                    f"take at most {limits.max_string_length}",
                    extensions={"code": "BAD_USER_INPUT", "argument": long[0]},
                )
            )
    return errors, found.lookups


def _recall(store: OrderedDict[K, V], key: K) -> V | None:
    found = store.get(key)
    if found is not None:
        store.move_to_end(key)
    return found


def _remember(store: OrderedDict[K, V], key: K, value: V) -> V:
    store[key] = value
    if len(store) > _MEMO_MAX:
        store.popitem(last=False)
    return value


def _memoized(store: OrderedDict[K, V], key: K, compute: Callable[[], V]) -> V:
    found = _recall(store, key)
    return found if found is not None else _remember(store, key, compute())


def _detached(errors: list[GraphQLError]) -> list[GraphQLError]:
    """`errors` with no traceback left on them, nor on the exceptions they wrap.

    Validation catches what a scalar's parser raises for a bad literal, and the traceback it
    keeps holds the validation's frames, which hold the document, the type info and every
    rule's visitors (about a thousand objects per document). Kept in the memo, 512 such
    documents doubled the heap each full garbage collection walks, and with it how long every
    thread of the process stops for one. Clients never see a traceback of these errors.
    """
    pending: list[BaseException] = list(errors)
    seen: set[int] = set()
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        error.__traceback__ = None
        linked = (getattr(error, "original_error", None), error.__cause__, error.__context__)
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return errors


class DocumentGuard(SchemaExtension):
    """Refuses documents over the limits before validating them, then validates (cached).

    Replaces strawberry's ValidationCache, which would validate a refused document anyway.
    """

    def __init__(self, limits: DocumentLimits) -> None:
        super().__init__()
        self.limits = limits

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            schema = context.schema._schema
            # strawberry's `operation_name` falls back to the first operation's; only the
            # name the client sent tells whether it chose one.
            chosen = getattr(context, "_provided_operation_name", context.operation_name)
            errors = operation_resolution_errors(document, chosen)
            if errors:
                context.pre_execution_errors = errors
                yield
                return
            try:
                errors, lookups = check_limits(
                    schema,
                    context.query or "",
                    document,
                    context.variables or {},
                    context.operation_name,
                    self.limits,
                )
                if not errors and self.limits.max_lookups:
                    errors = self._count_lookups(lookups)
                if not errors:
                    errors = await self._validate(schema, context.query or "", document, context)
            except RecursionError:
                # Only a server configured for huge documents gets here (long fragment chains).
                errors = [_too_complex("The document nests fragments too deeply to analyse")]
            context.pre_execution_errors = errors
        yield

    def _count_lookups(self, lookups: int) -> list[GraphQLError]:
        # Counted per HTTP request: aliases and a batch's operations share one allowance.
        facts = requestctx.current()
        total = lookups + (facts.lookups if facts is not None else 0)
        if facts is not None:
            facts.lookups = total
        if total <= self.limits.max_lookups:
            return []
        return [
            _too_complex(
                f"This request fetches {total} objects by id (`nodes`, `_entities`, `node` and "
                f"other lookups, over all its aliases and batched operations); the maximum is "
                f"{self.limits.max_lookups}"
            )
        ]

    @staticmethod
    async def _validate(
        schema: GraphQLSchema, query: str, document: DocumentNode, context: Any
    ) -> list[GraphQLError]:
        rules = context.validation_rules
        # Schemas differ in their rules (introspection off), so both are part of the key.
        key = (id(schema), tuple(rules), query)
        found = _recall(_VALIDATED, key) if query else None
        if found is not None:
            return found
        if len(query) < _INLINE_VALIDATION_CHARS:
            found = validate_document(schema, document, rules)
        else:
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(
                _VALIDATOR, validate_document, schema, document, rules
            )
        return _remember(_VALIDATED, key, _detached(found)) if query else found
