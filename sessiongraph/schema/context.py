"""What every resolver gets in `info.context`: this request's loaders and the providers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.types import Info as StrawberryInfo

from ..config import Settings
from ..loaders import Loaders
from ..providers import Providers

__all__ = ["Context", "Info"]


@dataclass
class Context:
    settings: Settings
    providers: Providers
    loaders: Loaders
    request: Any = None
    response: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


Info = StrawberryInfo[Context, None]
