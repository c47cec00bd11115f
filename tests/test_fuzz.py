"""Generated GraphQL documents and junk bodies against the gateway: never a 5xx or a traceback."""

from __future__ import annotations

import base64
import logging
from typing import Any

import hypothesis_graphql
import pytest
from graphql import StringValueNode, parse_value, print_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._servers import Gateway

FUZZ = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values a DateTime argument accepts, plus some it must refuse cleanly.
DATETIMES = st.sampled_from(
    [
        "2023-07-29T15:05:00Z",
        "2024-01-01T00:00:00+02:00",
        "2023-09-16",
        "garbage",
        "",
        # Valid ISO 8601 whose UTC instant leaves years 1-9999.
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:30:00+01:00",
    ]
).map(lambda text: StringValueNode(value=text))
# Federation representations for `_entities`: entities by each kind of key, and junk.
REPRESENTATIONS = st.sampled_from(
    [
        '{ __typename: "Meeting", meetingKey: 1216 }',
        '{ __typename: "F1Session", id: "RjFTZXNzaW9uOjkxNDA=" }',
        '{ __typename: "SqlRaceSession", connectionName: "Simulator", key: "x" }',
        '{ __typename: "Meeting", id: "junk" }',
        '{ __typename: "Nothing" }',
        "{ meetingKey: [1] }",
        '"text"',
        "3",
    ]
).map(parse_value)
SCALARS = {"DateTime": DATETIMES, "_Any": REPRESENTATIONS}


def check(response: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert isinstance(body, dict | list)
    for result in body if isinstance(body, list) else [body]:
        assert "data" in result or "errors" in result
        for error in result.get("errors") or ():
            assert error["extensions"]["code"], error
            assert error["extensions"]["code"] != "INTERNAL_SERVER_ERROR", error
    unexpected = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not unexpected, unexpected[0].getMessage()


@pytest.fixture
def schema_sdl(gateway: Gateway) -> str:
    # graphql-core's printer, not `as_str()`: the federation subgraph SDL uses `@key` and
    # `@link` without defining them, which a standalone schema parser refuses.
    sdl: str = print_schema(gateway.app.state.schema._schema)
    return sdl


def test_generated_queries(
    gateway: Gateway, schema_sdl: str, caplog: pytest.LogCaptureFixture
) -> None:
    strategy = hypothesis_graphql.from_schema(schema_sdl, custom_scalars=SCALARS, allow_x00=False)

    @FUZZ
    @given(query=strategy)
    def run(query: str) -> None:
        check(gateway.post({"query": query}), caplog)

    run()


def test_documents_that_do_not_fit_the_schema(
    gateway: Gateway, schema_sdl: str, caplog: pytest.LogCaptureFixture
) -> None:
    strategy = hypothesis_graphql.from_schema(
        schema_sdl,
        mode=hypothesis_graphql.Mode.NEGATIVE,
        custom_scalars=SCALARS,
        allow_x00=False,
    )

    @FUZZ
    @given(query=strategy)
    def run(query: str) -> None:
        check(gateway.post({"query": query}), caplog)

    run()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def test_junk_request_bodies(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    @settings(FUZZ, max_examples=500)
    @given(
        body=st.fixed_dictionaries(
            {},
            optional={
                "query": st.text() | JSON_VALUES,
                "variables": JSON_VALUES,
                "operationName": JSON_VALUES,
                "extensions": JSON_VALUES,
            },
        )
        | JSON_VALUES
    )
    def run(body: Any) -> None:
        check(gateway.post(body), caplog)

    run()


def _encoded(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


# Keys and positions: other scripts' digits, superscripts, signs, and integers past int()'s
# 4,300-digit limit, inside global IDs and cursors of every kind.
ODD_NUMBERS = (
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6)
    | st.integers(min_value=10**17, max_value=10**30).map(str)
    | st.sampled_from(["9" * 4400, "-1", "+1", " 1", "1_000", "0x1f", "1e3"])
)
TYPE_NAMES = st.sampled_from(["Meeting", "F1Session", "Guide", "GuidebookSession", "Location"])
HOSTILE_IDS = st.builds(lambda t, k: _encoded(f"{t}:{k}"), TYPE_NAMES, ODD_NUMBERS)
HOSTILE_CURSORS = st.builds(lambda k: _encoded(f"position:{k}"), ODD_NUMBERS) | st.builds(
    lambda k, at: _encoded(f'["timeline", "{at}", "openf1", {k}]'),
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-01:00", "x"]),
)
HOSTILE_QUERIES = [
    ("query($v: ID!) { node(id: $v) { id } }", HOSTILE_IDS),
    ("query($v: [ID!]!) { nodes(ids: $v) { id } }", st.lists(HOSTILE_IDS, max_size=3)),
    ("query($v: String) { guides(after: $v) { totalCount } }", HOSTILE_CURSORS),
    (
        "query($v: String) { guidebookSessions(guideId: 1, after: $v) { totalCount } }",
        HOSTILE_CURSORS,
    ),
    (
        'query($v: String) { sessions(from: "2023-01-01T00:00:00Z", '
        'to: "2024-01-01T00:00:00Z", after: $v) { totalCount } }',
        HOSTILE_CURSORS,
    ),
    (
        "query($v: [_Any!]!) { _entities(representations: $v) { __typename } }",
        st.lists(
            st.fixed_dictionaries({"__typename": TYPE_NAMES, "id": HOSTILE_IDS | ODD_NUMBERS}),
            max_size=3,
        ),
    ),
]


def test_hostile_ids_and_cursors(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    @settings(FUZZ, max_examples=300)
    @given(case=st.sampled_from(HOSTILE_QUERIES).flatmap(lambda q: st.tuples(st.just(q[0]), q[1])))
    def run(case: tuple[str, Any]) -> None:
        query, value = case
        response = gateway.post({"query": query, "variables": {"v": value}})
        check(response, caplog)

    run()
