"""Limit analysis of hostile 2,000-token documents: each shape against the 10 ms goal.

Run: `python bench/limits.py`. Prints, per shape, its tokens, the estimated cost, the best of
five analyses (depth, aliases, cost and lookups) and validation's time beside it, one run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from graphql import GraphQLSyntaxError, parse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strawberry.schema.schema import validate_document

from sessiongraph.config import Settings
from sessiongraph.schema.build import build_schema
from sessiongraph.schema.limits import estimate, measure

GOAL_MS = 10.0
TOKENS = 2000


def doubling(levels: int) -> str:
    fragments = " ".join(
        f"fragment F{i} on Meeting {{ meetingName ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"{{ meetings {{ ...F0 }} }} {fragments} fragment F{levels} on Meeting {{ year }}"


def doubling_on_query(levels: int) -> str:
    fragments = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ meetings {{ year }} }}"


def nested_lists(levels: int) -> str:
    fragments = " ".join(
        f"fragment F{i} on Meeting {{ ...F{i + 1} sessions {{ meeting {{ ...F{i + 1} }} }} }}"
        for i in range(levels)
    )
    return f"{{ meetings {{ ...F0 }} }} {fragments} fragment F{levels} on Meeting {{ year }}"


def wide_spreads(count: int) -> str:
    fragments = " ".join(
        f"fragment F{i} on Meeting {{ meetingKey "
        + " ".join(f"...F{j}" for j in range(i + 1, count))
        + " }"
        for i in range(count)
    )
    return f"{{ meetings {{ ...F0 }} }} {fragments}"


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: meetings {{ meetingKey }}" for i in range(count)) + " }"


def deep(levels: int) -> str:
    return "{ meetings { " + "sessions { meeting { " * levels + "year" + " } }" * levels + " } }"


def tokens(document: str) -> int:
    spaced = document
    for mark in "{}():":
        spaced = spaced.replace(mark, f" {mark} ")
    return len(spaced.split())


def largest(shape: Callable[[int], str]) -> str:
    """The shape at the most repetitions that stay within the token limit and parse."""
    size = 1
    while tokens(shape(size + 1)) <= TOKENS and parses(shape(size + 1)):
        size += 1
    return shape(size)


def parses(document: str) -> bool:
    try:
        parse(document)
    except GraphQLSyntaxError:
        return False
    return True


def chain(levels: int) -> str:
    fragments = " ".join(f"fragment F{i} on Meeting {{ ...F{i + 1} }}" for i in range(levels))
    return f"{{ meetings {{ ...F0 }} }} {fragments} fragment F{levels} on Meeting {{ year }}"


SHAPES: dict[str, Callable[[int], str]] = {
    "doubling fragments in a list": doubling,
    "doubling fragments on Query": doubling_on_query,
    "spreads in nested lists": nested_lists,
    "every fragment spreads all later": wide_spreads,
    "a chain of fragments": chain,
    "aliases": aliases,
    "deep nesting": deep,
}


def best_ms(run: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    schema = build_schema(Settings())._schema
    print(f"limit analysis of {TOKENS}-token documents (goal < {GOAL_MS:g} ms each)")
    print(f"{'shape':34} {'tokens':>6} {'cost':>20} {'analysis ms':>12} {'validation ms':>14}")
    worst = 0.0
    for name, shape in SHAPES.items():
        document = parse(largest(shape))
        found = estimate(schema, document, {}, 20)
        analysis = best_ms(
            lambda document=document: (measure(document), estimate(schema, document, {}, 20))
        )
        validation = best_ms(lambda document=document: validate_document(schema, document, ()), 1)
        worst = max(worst, analysis)
        text = largest(shape)
        print(f"{name:34} {tokens(text):6} {found.cost:20} {analysis:12.2f} {validation:14.1f}")
    verdict = "meets" if worst < GOAL_MS else "misses"
    print(f"slowest analysis {worst:.2f} ms: {verdict} the {GOAL_MS:g} ms goal")
    print("(validation runs only for documents within the limits, off the event loop when large)")


if __name__ == "__main__":
    main()
