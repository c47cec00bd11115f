"""Query and mutation resolvers, one module per upstream; thin by design."""
