"""The schema as SDL: the plain client-facing file and the federation subgraph."""

from __future__ import annotations

from typing import Any

from graphql import (
    REMOVE,
    DirectiveNode,
    FieldDefinitionNode,
    NamedTypeNode,
    Node,
    SchemaDefinitionNode,
    SchemaExtensionNode,
    TypeDefinitionNode,
    Visitor,
    parse,
    print_ast,
    visit,
)
from strawberry.schema import BaseSchema

__all__ = ["client_sdl", "subgraph_sdl"]

# What federation adds: composition reads it, frontend tools choke on it (`@link`, `@key`) or
# generate types nobody uses from it (`_Any`, `_Entity`, `_Service`).
_FEDERATION_TYPES = frozenset(
    {"_Any", "_Entity", "_Service", "_FieldSet", "FieldSet", "link__Import", "link__Purpose"}
)
_FEDERATION_FIELDS = frozenset({"_entities", "_service"})
_FEDERATION_DIRECTIVES = frozenset(
    {
        "link",
        "key",
        "shareable",
        "external",
        "requires",
        "provides",
        "override",
        "inaccessible",
        "tag",
        "extends",
        "interfaceObject",
        "composeDirective",
        "authenticated",
        "requiresScopes",
        "policy",
        "cost",
        "listSize",
        "context",
        "fromContext",
    }
)


class _WithoutFederation(Visitor):
    def enter_directive(self, node: DirectiveNode, *_: Any) -> Any:
        return REMOVE if node.name.value in _FEDERATION_DIRECTIVES else None

    def enter_field_definition(self, node: FieldDefinitionNode, *_: Any) -> Any:
        return REMOVE if node.name.value in _FEDERATION_FIELDS else None

    def enter(self, node: Node, *_: Any) -> Any:
        if isinstance(node, TypeDefinitionNode) and node.name.value in _FEDERATION_TYPES:
            return REMOVE
        if (
            isinstance(node, SchemaExtensionNode)
            and all(d.name.value in _FEDERATION_DIRECTIVES for d in node.directives or ())
            and not node.operation_types
        ):
            return REMOVE
        return None


def subgraph_sdl(schema: BaseSchema) -> str:
    """The federation v2 subgraph SDL (`@link`, `@key`) that composition reads."""
    return schema.as_str()


def client_sdl(schema: BaseSchema) -> str:
    """Plain GraphQL that graphql-js, graphql-core and graphql-inspector load."""
    document = visit(parse(schema.as_str()), _WithoutFederation())
    definitions = [
        d
        for d in document.definitions
        # A schema definition naming only the default root types says nothing.
        if not (isinstance(d, SchemaDefinitionNode) and _default_roots(d))
    ]
    return print_ast(document.__class__(definitions=tuple(definitions)))


def _default_roots(node: SchemaDefinitionNode) -> bool:
    defaults = {"query": "Query", "mutation": "Mutation", "subscription": "Subscription"}
    return not node.directives and all(
        isinstance(t.type, NamedTypeNode) and t.type.name.value == defaults[t.operation.value]
        for t in node.operation_types
    )
