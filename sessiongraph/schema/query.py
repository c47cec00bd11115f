"""The root `Query` type, merged from one part per upstream."""

from __future__ import annotations

from strawberry.tools import merge_types

from .guidebook import GuidebookQuery
from .nodes import NodeQuery
from .openf1 import OpenF1Query
from .sqlrace import SqlRaceQuery
from .timeline import TimelineQuery

__all__ = ["Query"]

# Each upstream's schema module contributes its root fields here.
Query = merge_types("Query", (OpenF1Query, GuidebookQuery, SqlRaceQuery, TimelineQuery, NodeQuery))
