"""The `Session` interface that every source's session type implements."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from .nodes import Node

__all__ = ["Session", "SessionSource"]


@strawberry.enum(description="Where a session comes from.")
class SessionSource(Enum):
    OPENF1 = "openf1"
    GUIDEBOOK = "guidebook"
    SQLRACE = "sqlrace"


@strawberry.interface(description="A period of activity with a start and an end, from any source.")
class Session(Node):
    name: str | None = strawberry.field(description="The session's own name.")
    starts_at: datetime | None = strawberry.field(description="When it starts.")
    ends_at: datetime | None = strawberry.field(description="When it ends.")
    source: SessionSource
