"""`python -m sessiongraph` is the `sessiongraph` command."""

from .cli import main

main()
