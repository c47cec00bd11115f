"""Execution where strawberry's generic path costs most: plain objects completed in one loop,
a shared subscription event executed once for all its subscribers, null arguments left to the
resolvers' own defaults."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfoHelpers,
    GraphQLScalarType,
    GraphQLSchema,
)
from graphql.execution.executor import Executor
from graphql.pyutils import gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from .shared_events import shared_events

__all__ = ["PlainObjectsExecutor", "skip_null_defaults"]


def _frozen(values: Any) -> Any:
    """Variables as a hashable key (lists and objects included)."""
    if isinstance(values, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in values.items()))
    if isinstance(values, list | tuple):
        return tuple(_frozen(v) for v in values)
    return values


# (response key, attribute or None for __typename, serialize, nullable, a list of leaves)
_Step = tuple[str, str | None, Callable[[Any], Any] | None, bool, bool]
_NOT_PLAIN: tuple[_Step, ...] = ()
_FALLBACK = object()


def _helpers_of(executor: Executor[Any]) -> GraphQLResolveInfoHelpers:
    """The executor's helpers for resolvers, holding it weakly. Its own hold bound methods of
    it, a cycle that kept every request's executor, context and loaders for the collector."""
    track = weakref.WeakMethod(executor.track_async_work)

    def track_async_work(values: Sequence[Any]) -> None:
        method = track()
        if method is not None:  # else the execution is over: nothing is left to settle
            method(values)

    def gather_async_work(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return gather_with_cancel(*values)

    return GraphQLResolveInfoHelpers(gather=gather_async_work, track=track_async_work)


class PlainObjectsExecutor(StrawberryGraphQLCoreExecutionContext):
    """When every field selected on an object is a plain attribute of a scalar or enum type
    (no resolver, no arguments, no directives), its answer is read and serialized in one loop
    instead of one resolver call and completion per field, which is what makes a race's 1,156
    laps or a season's sessions cost close to their serialization. Anything else, and any value
    that does not fit, takes graphql-core's own path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = _helpers_of(self)
        # Per grouped field set (kept alive beside its plan, so its id is not reused).
        self._plans: dict[int, tuple[Any, tuple[_Step, ...]]] = {}
        middleware = self.middleware_manager
        self._plain_allowed = middleware is None or not middleware.middlewares
        self._event_key: tuple[Any, ...] | None = None
        self._event_key_known = False

    def build_per_event_executor(self, payload: Any) -> Any:
        """A subscription event whose value is shared (see shared_events) is executed once per
        document and variables for all its subscribers; the others copy nothing."""
        if shared_events.is_shared(payload):
            key = self._shared_key()
            if key is not None:
                return _SharedEvent(super().build_per_event_executor, payload, key)
        return super().build_per_event_executor(payload)

    def _shared_key(self) -> tuple[Any, ...] | None:
        """What makes two subscriptions' answers to one event the same: the document, the
        operation and the variables (worked out once per subscription)."""
        if self._event_key_known:
            return self._event_key
        key: tuple[Any, ...] | None = None
        if self.operation.loc is not None:
            variables = self.variable_values
            coerced = getattr(variables, "coerced", variables) or {}
            name = self.operation.name and self.operation.name.value
            try:
                key = (self.operation.loc.source.body, name, _frozen(coerced))
                hash(key)
            except TypeError:
                key = None
        self._event_key, self._event_key_known = key, True
        return key

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Any,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        if self._plain_allowed and path is not None:
            steps = self._plan(parent_type, grouped_field_set)
            if steps:
                found = _complete(steps, source_value, parent_type.name)
                if found is not _FALLBACK:
                    return found
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> tuple[_Step, ...]:
        key = id(grouped_field_set)
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        steps = _plan(parent_type, grouped_field_set)
        self._plans[key] = (grouped_field_set, steps)
        return steps


class _SharedEvent:
    """One subscriber's turn at a shared event: the first computes the answer on its own copy
    of the executor, the others are handed that answer."""

    __slots__ = ("_build", "_key", "_payload")

    def __init__(self, build: Callable[[Any], Any], payload: Any, key: tuple[Any, ...]) -> None:
        self._build, self._payload, self._key = build, payload, key

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self._payload
        return shared_events.result(
            payload, self._key, lambda: self._build(payload).execute_operation(serially)
        )


def _plan(parent_type: GraphQLObjectType, grouped_field_set: Any) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    for response_key, details in grouped_field_set.items():
        nodes = [d.node for d in details]
        name = nodes[0].name.value
        if any(node.arguments or node.directives for node in nodes):
            return _NOT_PLAIN
        if name == "__typename":
            steps.append((response_key, None, None, False, False))
            continue
        field = parent_type.fields.get(name)
        definition = field.extensions.get("strawberry-definition") if field else None
        if field is None or field.args or definition is None or not definition.is_basic_field:
            return _NOT_PLAIN
        kind, nullable = field.type, True
        if isinstance(kind, GraphQLNonNull):
            kind, nullable = kind.of_type, False
        is_list = isinstance(kind, GraphQLList)
        if is_list:
            item = kind.of_type
            # Only lists of nullable leaves: a non-null item would need its own error path.
            if isinstance(item, GraphQLNonNull):
                return _NOT_PLAIN
            kind = item
        if not isinstance(kind, GraphQLScalarType | GraphQLEnumType):
            return _NOT_PLAIN
        steps.append((response_key, definition.python_name, kind.serialize, nullable, is_list))
    return tuple(steps)


def _complete(steps: tuple[_Step, ...], source: Any, type_name: str) -> Any:
    answer: dict[str, Any] = {}
    try:
        for response_key, attribute, serialize, nullable, is_list in steps:
            if attribute is None:
                answer[response_key] = type_name
                continue
            value = getattr(source, attribute)
            if value is None:
                if not nullable:
                    return _FALLBACK  # graphql-core reports the error where it belongs
                answer[response_key] = None
            elif is_list:
                answer[response_key] = [None if v is None else serialize(v) for v in value]  # type: ignore[misc]
            else:
                answer[response_key] = serialize(value)  # type: ignore[misc]
    except Exception:  # any oddity: the slow path raises it where it belongs
        return _FALLBACK
    return answer


def skip_null_defaults(schema: GraphQLSchema) -> None:
    """Arguments that arrive as null, their default, are left out of the resolver's call, so
    it takes its own default (strawberry derives one from the other: both None) instead of
    strawberry converting each one (~6 us an argument, per call: most of the argument cost
    of a season's 23 `Meeting.sessions`)."""
    for named in schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        for field in named.fields.values():
            nulls = tuple(
                name
                for name, argument in field.args.items()
                if argument.default_value is None and not isinstance(argument.type, GraphQLNonNull)
            )
            if nulls and field.resolve is not None:
                field.resolve = _without_nulls(field.resolve, nulls)


def _without_nulls(resolve: Callable[..., Any], nulls: tuple[str, ...]) -> Callable[..., Any]:
    def resolver(source: Any, info: Any, **arguments: Any) -> Any:
        for name in nulls:
            if name in arguments and arguments[name] is None:
                del arguments[name]
        return resolve(source, info, **arguments)

    return resolver
