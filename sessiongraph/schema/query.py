"""The root `Query` type, merged from one part per upstream."""

from __future__ import annotations

from strawberry.tools import merge_types

from .guidebook import GuidebookQuery
from .openf1 import OpenF1Query
from .sqlrace import SqlRaceQuery

__all__ = ["Query"]

# Each upstream's schema module contributes its root fields here.
Query = merge_types("Query", (OpenF1Query, GuidebookQuery, SqlRaceQuery))
