"""`@defer`/`@stream` for clients that did not ask for multipart: every payload merged into one
ordinary result, as if the directives were not there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphql import GraphQLError
from graphql.execution import (
    ExperimentalIncrementalExecutionResults,
    IncrementalDeferResult,
    IncrementalStreamResult,
)
from strawberry.types import ExecutionResult

__all__ = ["settle"]


async def settle(results: ExperimentalIncrementalExecutionResults) -> ExecutionResult:
    """Waits for every deferred and streamed part. The first payload's errors come first in
    the result, then those the later parts added."""
    initial = results.initial_result
    data = initial.data
    errors: list[GraphQLError] = list(initial.errors or ())
    paths = {pending.id: list(pending.path) for pending in initial.pending}
    async for subsequent in results.subsequent_results:
        for pending in subsequent.pending or ():
            paths[pending.id] = list(pending.path)
        for part in subsequent.incremental or ():
            where = [*paths.get(part.id, ()), *(part.sub_path or ())]
            if isinstance(part, IncrementalDeferResult):
                target = _at(data, where)
                if isinstance(target, dict):
                    _merge(target, part.data)
            elif isinstance(part, IncrementalStreamResult):
                target = _at(data, where)
                if isinstance(target, list):
                    target.extend(part.items)
            errors.extend(part.errors or ())
        for completed in subsequent.completed or ():
            errors.extend(completed.errors or ())
    return ExecutionResult(data=data, errors=errors or None, extensions=initial.extensions)


def _at(data: Any, path: Sequence[str | int]) -> Any:
    """The value at `path`, or None where an error nulled a parent on the way."""
    for step in path:
        if isinstance(data, dict) and isinstance(step, str):
            data = data.get(step)
        elif isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data):
            data = data[step]
        else:
            return None
    return data


def _merge(target: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        present = target.get(key)
        if isinstance(present, dict) and isinstance(value, dict):
            _merge(present, value)
        else:
            target[key] = value
