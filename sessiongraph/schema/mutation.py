"""The root `Mutation` type, merged from one part per upstream that can be written to."""

from __future__ import annotations

from strawberry.tools import merge_types

from .guidebook_mutations import GuidebookMutation

__all__ = ["Mutation"]

Mutation = merge_types("Mutation", (GuidebookMutation,))
