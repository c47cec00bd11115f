"""The GraphQL schema: strawberry types, inputs, enums and errors, organised by upstream.

Import `build_schema` from `sessiongraph.schema.build`; this package stays import-light so
resolvers can use its context types without cycles.
"""
