"""What every resolver gets in `info.context`: this request's loaders and the providers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError
from strawberry.types import Info as StrawberryInfo
from strawberry.types.nodes import SelectedField

from ..config import Settings
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
    extra: dict[str, Any] = field(default_factory=dict)
    # Errors reported beside data that is still returned (see schema/reported.py).
    reported_errors: list[GraphQLError] = field(default_factory=list)


Info = StrawberryInfo[Context, None]


def subselections(info: Info, name: str) -> list[SelectedField]:
    """The fields called `name` directly below the current field, through fragments too."""
    found: list[SelectedField] = []
    pending = list(info.selected_fields[0].selections) if info.selected_fields else []
    while pending:
        selection = pending.pop()
        if isinstance(selection, SelectedField):
            if selection.name == name:
                found.append(selection)
        else:
            pending.extend(selection.selections)
    return found
