"""sessiongraph: one typed GraphQL API over OpenF1, Guidebook and McLaren SQL Race sessions."""

__version__ = "0.1.0"
