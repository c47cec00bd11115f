"""What every resolver gets in `info.context`: this request's loaders and the providers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    SelectionNode,
)
from strawberry.types import Info as StrawberryInfo
from strawberry.types.nodes import SelectedField, convert_arguments, convert_directives

from ..config import Settings
from ..live import Live
from ..loaders import Loaders
from ..providers import Providers

__all__ = ["Context", "Info", "subselections"]


@dataclass
class Context:
    settings: Settings
    providers: Providers
    loaders: Loaders
    request: Any = None
    response: Any = None
    # The process's live feeds (subscriptions), shared by every request.
    live: Live | None = None
    # graphql-ws / graphql-transport-ws `connection_init` payload (strawberry sets it).
    connection_params: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Errors reported beside data that is still returned (see schema/reported.py).
    reported_errors: list[GraphQLError] = field(default_factory=list)


Info = StrawberryInfo[Context, None]


def subselections(info: Info, name: str) -> list[SelectedField]:
    """The fields called `name` directly below the current field, through fragments too.

    Walks the document itself, each fragment once: strawberry's `info.selected_fields` expands
    every spread of every fragment, which is exponential in a document of nested spreads. The
    fields returned carry their arguments, not their own selections.
    """
    raw = info._raw_info
    found: list[SelectedField] = []
    seen: set[str] = set()
    pending: list[SelectionNode] = [
        selection
        for node in raw.field_nodes
        for selection in (node.selection_set.selections if node.selection_set else ())
    ]
    while pending:
        selection = pending.pop()
        if isinstance(selection, FieldNode):
            if selection.name.value == name:
                found.append(
                    SelectedField(
                        name=name,
                        directives=convert_directives(raw, selection.directives),
                        arguments=convert_arguments(raw, selection.arguments),
                        selections=[],
                        alias=selection.alias.value if selection.alias else None,
                    )
                )
        elif isinstance(selection, InlineFragmentNode):
            pending.extend(selection.selection_set.selections)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = raw.fragments.get(selection.name.value)
            if fragment is not None and selection.name.value not in seen:
                seen.add(selection.name.value)
                pending.extend(fragment.selection_set.selections)
    return found
