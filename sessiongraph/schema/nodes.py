"""Global object identity: the `Node` interface, `node`/`nodes`, and federation entity lookup.

Every entity type registers how to load itself from the key inside its global ID; the same
registry answers `node(id:)`, `nodes(ids:)` and federation's `_entities` through the loaders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import strawberry

from ..errors import BadUserInput
from .context import Info
from .ids import decode_id

__all__ = ["MAX_NODES", "Node", "NodeQuery", "register_node", "resolve_entity"]

MAX_NODES = 100

Loader = Callable[[Info, str], Awaitable[Any]]


@dataclass(frozen=True)
class _NodeType:
    key_fields: tuple[str, ...]  # the GraphQL fields of its federation @key, in ID-key order
    load: Loader  # raises BAD_USER_INPUT for a malformed key, NOT_FOUND for a missing object


_REGISTRY: dict[str, _NodeType] = {}


def register_node(type_name: str, key_fields: Sequence[str], load: Loader) -> None:
    _REGISTRY[type_name] = _NodeType(tuple(key_fields), load)


def _node_type(type_name: str, global_id: str) -> _NodeType:
    found = _REGISTRY.get(type_name)
    if found is None:
        raise BadUserInput(f"{global_id!r} is not a sessiongraph ID", field="id")
    return found


async def _by_id(info: Info, global_id: str) -> Any:
    type_name, key = decode_id(global_id)
    return await _node_type(type_name, global_id).load(info, key)


@strawberry.interface(description="An object with a global ID that `node(id:)` fetches again.")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque global ID.")


async def resolve_entity(info: Info, type_name: str, representation: Mapping[str, Any]) -> Any:
    """An entity from a federation representation (without `__typename`)."""
    node_type = _REGISTRY.get(type_name)
    if node_type is None:
        raise BadUserInput(f"{type_name!r} is not an entity of this subgraph")
    global_id = representation.get("id")
    if isinstance(global_id, str):
        found_type, key = decode_id(global_id)
        if found_type != type_name:
            raise BadUserInput(f"{global_id!r} is not the ID of a {type_name}")
        return await node_type.load(info, key)
    values = [representation.get(name) for name in node_type.key_fields]
    if not all(isinstance(value, str | int) and not isinstance(value, bool) for value in values):
        fields = " ".join(node_type.key_fields)
        raise BadUserInput(f"a {type_name} representation needs `id` or `{fields}`")
    return await node_type.load(info, "/".join(str(value) for value in values))


async def _settled(info: Info, global_id: str) -> Any:
    """The node, or the error that nulls only its own list item."""
    try:
        return await _by_id(info, global_id)
    except Exception as exc:  # graphql-core reports an exception item at its index
        return exc


@strawberry.type
class NodeQuery:
    """Root fields that fetch any entity by its global ID."""

    @strawberry.field(
        description="Any object by its global ID; null with NOT_FOUND when it no longer exists."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        found: Node = await _by_id(info, id)
        return found

    @strawberry.field(
        description=f"Objects by global ID, in the order asked, at most {MAX_NODES}; loaded "
        "together, one upstream request per kind where the upstream allows. A missing or "
        "malformed ID nulls only its own item, with an error at its index."
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise BadUserInput(f"`ids` takes at most {MAX_NODES} IDs", field="ids")
        results: list[Node | None] = await asyncio.gather(*(_settled(info, i) for i in ids))
        return results
