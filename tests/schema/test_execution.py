"""The plain-object completion path gives exactly graphql-core's answers, errors included;
null arguments skip strawberry's conversion and still reach resolvers as their defaults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from sessiongraph.schema.execution import PlainObjectsExecutor, skip_null_defaults
from tests._servers import Gateway

QUERIES = [
    """{ f1Session(key: 9839) { __typename source
         laps { t: __typename driverNumber lap: lapNumber dateStart lapDuration isPitOutLap
                segmentsSector1 } } }""",
    """{ f1Session(key: 9135) { results { position durationByPhase gapToLeaderByPhase
         gapToLeaderText lapsBehind dnf } drivers { nameAcronym teamColour countryCode } } }""",
    """{ meetings(filter: {year: {eq: 2024}}) { meetingKey gmtOffset dateStart dateEnd
         sessions { sessionName isCancelled meeting { meetingName } } } }""",
    """{ sessions(from: "2023-07-28T00:00:00Z", to: "2023-07-31T00:00:00Z") {
         nodes { __typename name source startsAt ... on F1Session { sessionKey } } } }""",
    """{ connections { name isSqlite sessions(first: 3) { nodes { key state lapsCount
         laps { number name lapTime countForFastestLap } } } } }""",
    """{ guidebookSessions(guideId: 58214, first: 5) { nodes { name startTime
         scheduleTrackIds locationIds } } }""",
    "{ f1Session(key: 9839) { laps @include(if: false) { lapNumber } sessionKey } }",
]


@pytest.fixture
def slow(gateway: Gateway) -> Iterator[Gateway]:
    yield gateway
    gateway.app.state.schema.execution_context_class = PlainObjectsExecutor


@pytest.mark.parametrize("query", QUERIES)
def test_the_same_answers_as_graphql_core(slow: Gateway, query: str) -> None:
    schema = slow.app.state.schema
    assert schema.execution_context_class is PlainObjectsExecutor
    fast = slow.query(query)
    schema.execution_context_class = StrawberryGraphQLCoreExecutionContext
    assert slow.query(query) == fast
    assert "errors" not in fast, fast


def test_null_arguments_reach_resolvers_as_their_defaults() -> None:
    @strawberry.type
    class Query:
        @strawberry.field
        def given(self, plain: int | None = None, five: int | None = 5) -> str:
            return f"{plain} {five}"

    schema = strawberry.Schema(query=Query)
    skip_null_defaults(schema._schema)
    asked = {
        "{ given }": "None 5",
        "{ given(plain: null, five: null) }": "None None",
        "{ given(plain: 1, five: 2) }": "1 2",
        "query ($p: Int) { given(plain: $p) }": "None 5",
    }
    for query, expected in asked.items():
        result = schema.execute_sync(query, variable_values={})
        assert result.errors is None
        assert result.data == {"given": expected}
    # The SDL keeps its defaults.
    assert "given(plain: Int = null, five: Int = 5)" in str(schema)
