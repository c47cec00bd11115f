"""Document limits: linear analysis of hostile shapes, lookup fan-out, argument sizes."""

from __future__ import annotations

import base64
import gc
import logging
import statistics
import threading
import time
import types
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from graphql import parse

from sessiongraph.config import Settings
from sessiongraph.schema.build import build_schema
from sessiongraph.schema.limits import _VALIDATED, estimate, measure
from tests._servers import Gateway, Sandbox


def code_of(result: dict[str, Any]) -> str:
    codes: set[str] = {e["extensions"]["code"] for e in result["errors"]}
    assert len(codes) == 1, result["errors"]
    return codes.pop()


def doubling_on_query(levels: int, leaf: str = "meetings { meetingKey }") -> str:
    fragments = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ {leaf} }}"


def doubling_in_list(levels: int) -> str:
    fragments = " ".join(
        f"fragment F{i} on Meeting {{ meetingName ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"{{ meetings {{ ...F0 }} }} {fragments} fragment F{levels} on Meeting {{ meetingKey }}"


def doubling_through_inline_fragments(levels: int) -> str:
    fragments = " ".join(
        f"fragment F{i} on F1Session {{ ... on F1Session {{ ...F{i + 1} }} "
        f"... on Session {{ ...F{i + 1} }} sessionName }}"
        for i in range(levels)
    )
    return f"{{ f1Sessions {{ ...F0 }} }} {fragments} fragment F{levels} on F1Session {{ year }}"


def tripling_through_nesting(levels: int) -> str:
    """Each fragment spreads the next three times, once inside a nested list."""
    fragments = " ".join(
        f"fragment F{i} on Meeting {{ ...F{i + 1} a{i}: meetingKey ...F{i + 1} "
        f"sessions {{ meeting {{ ...F{i + 1} }} }} }}"
        for i in range(levels)
    )
    return f"{{ meetings {{ ...F0 }} }} {fragments} fragment F{levels} on Meeting {{ year }}"


def wide_spreads(count: int) -> str:
    """Every fragment spreads every later one: quadratic in spreads, linear in the text."""
    fragments = " ".join(
        f"fragment F{i} on Meeting {{ meetingKey "
        + " ".join(f"...F{j}" for j in range(i + 1, count))
        + " }"
        for i in range(count)
    )
    return f"{{ meetings {{ ...F0 }} }} {fragments}"


SHAPES: dict[str, Callable[[int], str]] = {
    "doubling on Query": doubling_on_query,
    "doubling inside a list": doubling_in_list,
    "doubling through inline fragments": doubling_through_inline_fragments,
    "tripling through nesting": tripling_through_nesting,
}


def tokens(document: str) -> int:
    return len(document.replace("{", " { ").replace("}", " } ").replace(":", " : ").split())


@pytest.fixture(scope="module")
def graphql_schema() -> Any:
    return build_schema(Settings())._schema


def analysis_seconds(schema: Any, document: str) -> float:
    parsed = parse(document)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        measure(parsed)
        estimate(schema, parsed, {}, 20)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("shape", SHAPES)
def test_analysis_of_exponential_shapes_is_linear(graphql_schema: Any, shape: str) -> None:
    # 40 levels would take longer than the universe's age if any spread were walked again.
    document = SHAPES[shape](40)
    assert tokens(document) < 2000
    assert analysis_seconds(graphql_schema, document) < 0.05
    found = estimate(graphql_schema, parse(document), {}, 20)
    assert found.cost > 50_000  # every spread still costs its whole subtree


def test_analysis_of_a_2000_token_document_of_any_shape_is_fast(graphql_schema: Any) -> None:
    documents = [SHAPES[shape](levels) for shape in SHAPES for levels in (60, 90)]
    documents.append(wide_spreads(60))
    documents.append("{ " + " ".join(f"a{i}: meetings {{ meetingKey }}" for i in range(300)) + "}")
    for document in documents:
        assert analysis_seconds(graphql_schema, document) < 0.05, document[:80]


def test_depth_counts_fragments_once_and_sees_through_them() -> None:
    document = parse(
        "{ meetings { ...A ...A } } fragment A on Meeting { sessions { ...B } ...B } "
        "fragment B on F1Session { meeting { meetingKey } }"
    )
    assert measure(document) == (4, 0)


def test_nodes_cost_by_the_number_of_ids(graphql_schema: Any) -> None:
    def cost(ids: int) -> int:
        listed = ", ".join(f'"id{i}"' for i in range(ids))
        query = f"{{ nodes(ids: [{listed}]) {{ id ... on Meeting {{ meetingName year }} }} }}"
        return estimate(graphql_schema, parse(query), {}, 20).cost

    assert cost(5) < cost(50) < cost(100)
    query = parse("query($ids: [ID!]!) { nodes(ids: $ids) { id } }")
    found = estimate(graphql_schema, query, {"ids": ["x"] * 70}, 20)
    assert found.lookups == 70


def test_exponential_spreads_of_a_free_field_are_answered_at_once(gateway: Gateway) -> None:
    # Execution merges repeated spreads, so this costs nothing and is simply answered.
    started = time.perf_counter()
    result = gateway.query(doubling_on_query(40, leaf="__typename"))
    assert time.perf_counter() - started < 2
    assert result == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("shape", SHAPES)
def test_exponential_documents_are_refused_at_once(
    gateway: Gateway, sandbox: Sandbox, shape: str
) -> None:
    started = time.perf_counter()
    result = gateway.query(SHAPES[shape](30))
    assert time.perf_counter() - started < 2
    assert code_of(result) == "QUERY_TOO_COMPLEX"
    assert sandbox.requests("openf1") == 0


def test_a_batch_of_exponential_documents_is_refused_at_once(gateway: Gateway) -> None:
    batch = [{"query": SHAPES[shape](30)} for shape in SHAPES] * 2
    started = time.perf_counter()
    response = gateway.post(batch)
    assert time.perf_counter() - started < 3
    assert [code_of(result) for result in response.json()] == ["QUERY_TOO_COMPLEX"] * len(batch)


def test_healthz_answers_while_the_worst_documents_are_refused(gateway: Gateway) -> None:
    worst = [SHAPES[shape](60) for shape in SHAPES] + [wide_spreads(60)]
    stop = threading.Event()

    def flood() -> None:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            while not stop.is_set():
                for document in worst:
                    client.post("/graphql", json={"query": document})

    flooders = [threading.Thread(target=flood) for _ in range(4)]
    for thread in flooders:
        thread.start()
    try:
        time.sleep(0.3)
        latencies = []
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            for _ in range(20):
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.02)
    finally:
        stop.set()
        for thread in flooders:
            thread.join()
    assert statistics.median(latencies) < 0.1, latencies


def guidebook_representations(count: int) -> str:
    items = ", ".join(f'{{ __typename: "GuidebookSession", id: "{gid(i)}" }}' for i in range(count))
    return f"{{ _entities(representations: [{items}]) {{ __typename }} }}"


def gid(key: int, type_name: str = "GuidebookSession") -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{key + 1}".encode()).decode()


def test_entities_beyond_the_lookup_bound_are_refused_before_any_upstream_call(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    result = gateway.query(guidebook_representations(201))
    assert code_of(result) == "QUERY_TOO_COMPLEX"
    assert "201" in result["errors"][0]["message"]
    reps = [{"__typename": "F1Session", "sessionKey": 9000 + i} for i in range(500)]
    result = gateway.query(
        "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }", {"r": reps}
    )
    assert code_of(result) == "QUERY_TOO_COMPLEX"
    assert sandbox.requests("guidebook") == sandbox.requests("openf1") == 0


def test_aliases_and_batches_share_one_lookup_allowance(gateway: Gateway, sandbox: Sandbox) -> None:
    ids = orjson.dumps([gid(i, "Meeting") for i in range(100)]).decode()
    aliased = "{ " + " ".join(f"n{i}: nodes(ids: {ids}) {{ id }}" for i in range(3)) + " }"
    assert code_of(gateway.query(aliased)) == "QUERY_TOO_COMPLEX"
    single = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    batch = [{"query": single, "variables": {"ids": [gid(i, "Meeting") for i in range(90)]}}] * 3
    results = gateway.post(batch).json()
    refused = [r for r in results if r.get("errors") and code_of(r) == "QUERY_TOO_COMPLEX"]
    assert len(refused) == 1  # 90 + 90 fit the allowance of 200; the third does not
    lookups = " ".join(f"m{i}: meeting(key: {1200 + i}) {{ meetingKey }}" for i in range(25))
    many = [{"query": "{ " + lookups + " }"}] * 10
    results = gateway.post(many).json()
    assert sum(1 for r in results if r.get("errors")) >= 2  # 25 x 10 > 200


def test_failed_items_do_not_write_a_log_line_each(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    reps = [{"__typename": "Meeting", "meetingKey": "x"} for _ in range(150)]
    with caplog.at_level(logging.INFO, logger="sessiongraph.graphql"):
        result = gateway.query(
            "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }", {"r": reps}
        )
    assert len(result["errors"]) == 150
    lines = [r for r in caplog.records if r.name == "sessiongraph.graphql"]
    assert 0 < len(lines) <= 11


LONG = "x" * 5000


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (f'{{ meetings(filter: {{ countryName: {{ eq: "{LONG}" }} }}) {{ meetingKey }} }}', {}),
        (
            "query($n: [String!]) { f1Sessions(filter: { sessionName: { in: $n } }) "
            "{ sessionKey } }",
            {"n": ["Race", LONG]},
        ),
        ("query($c: String!) { connection(name: $c) { name } }", {"c": LONG}),
        (f'{{ node(id: "{LONG}") {{ id }} }}', {}),
        (f'{{ guides(after: "{LONG}") {{ totalCount }} }}', {}),
    ],
)
def test_long_string_arguments_are_refused_before_any_upstream_call(
    gateway: Gateway, sandbox: Sandbox, query: str, variables: dict[str, Any]
) -> None:
    result = gateway.query(query, variables)
    assert code_of(result) == "BAD_USER_INPUT"
    assert "at most 1000" in result["errors"][0]["message"]
    assert all(sandbox.requests(name) == 0 for name in ("openf1", "guidebook", "sqlrace"))


def test_long_strings_in_mutations_are_not_refused_by_the_query_bound(gateway: Gateway) -> None:
    result = gateway.query(
        'mutation { createSession(input: { guideId: 1, name: "n", descriptionHtml: "'
        + LONG
        + '" }) { userErrors { message } } }'
    )
    assert "at most 1000" not in orjson.dumps(result).decode()


OUT_OF_RANGE = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T05:00:00+05:01",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T22:00:00-02:00",
]


@pytest.mark.parametrize("instant", OUT_OF_RANGE)
def test_instants_outside_utc_years_are_bad_user_input(
    gateway: Gateway, instant: str, caplog: pytest.LogCaptureFixture
) -> None:
    queries = [
        (f'{{ sessions(from: "{instant}", to: "2024-01-01T00:00:00Z") {{ totalCount }} }}', {}),
        (f'{{ meetings(filter: {{ dateStart: {{ gt: "{instant}" }} }}) {{ meetingKey }} }}', {}),
        (
            "query($t: DateTime!) { f1Sessions(filter: { dateEnd: { lte: $t } }) { sessionKey } }",
            {"t": instant},
        ),
        (
            'query($t: DateTime!) { sessions(from: "2023-01-01T00:00:00Z", to: $t) '
            "{ totalCount } }",
            {"t": instant},
        ),
    ]
    for query, variables in queries:
        assert code_of(gateway.query(query, variables)) == "BAD_USER_INPUT", query
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def forged(payload: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        forged(["timeline", "0001-01-01T00:00:00+14:00", "openf1", 1]),
        forged(["timeline", "9999-12-31T23:59:59-10:00", "guidebook", 2]),
        forged(["timeline", "2023-01-01T00:00:00", "openf1", 1]),  # no offset
        forged(["timeline", "2023-01-01T00:00:00Z", "sqlrace", 7]),
    ],
)
def test_forged_timeline_cursors_are_bad_user_input(
    gateway: Gateway, cursor: str, caplog: pytest.LogCaptureFixture
) -> None:
    result = gateway.query(
        '{ sessions(from: "2023-01-01T00:00:00Z", to: "2024-01-01T00:00:00Z", after: "'
        + cursor
        + '") { totalCount } }'
    )
    assert code_of(result) == "BAD_USER_INPUT"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


BAD_POSITIONS = ["²", "\u0661\u0662", "\u07c3", "1²", "9" * 4400, "1" * 19, "-1", " 1"]


@pytest.mark.parametrize("position", BAD_POSITIONS)
def test_cursors_with_odd_digits_are_bad_user_input(
    gateway: Gateway, position: str, caplog: pytest.LogCaptureFixture
) -> None:
    cursor = b64(f"position:{position}")
    for query in (
        "query($a: String) { guides(after: $a) { totalCount } }",
        "query($a: String) { guidebookSessions(guideId: 1, after: $a) { totalCount } }",
    ):
        result = gateway.query(query, {"a": cursor})
        if len(cursor) <= 1000:
            assert code_of(result) == "BAD_USER_INPUT", (query, result)
        else:
            assert code_of(result) == "BAD_USER_INPUT"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "key", ["²", "\u0661", "9" * 4400, "9" * 600, "12345678901234567890", "0x10", "\u0663\u0664"]
)
def test_global_ids_with_odd_keys_are_bad_user_input(
    gateway: Gateway, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    for type_name in ("Meeting", "F1Session", "GuidebookSession", "Guide"):
        global_id = b64(f"{type_name}:{key}")
        result = gateway.query("query($id: ID!) { node(id: $id) { id } }", {"id": global_id})
        assert code_of(result) == "BAD_USER_INPUT", (type_name, result)
    result = gateway.query(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": [b64(f"Meeting:{key}"), gid(1215, "Meeting")]},
    )
    if len(b64(f"Meeting:{key}")) <= 1000:  # longer ones are refused whole, before execution
        assert result["errors"][0]["path"] == ["nodes", 0]
        assert result["data"]["nodes"][1] is not None
    assert code_of(result) == "BAD_USER_INPUT"
    reps = [{"__typename": "Meeting", "meetingKey": key}]
    result = gateway.query(
        "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }", {"r": reps}
    )
    assert code_of(result) == "BAD_USER_INPUT"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_fragment_chains_too_long_to_analyse_are_refused(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(max_query_tokens=100_000, max_query_cost=0)
    levels = 3000
    fragments = " ".join(f"fragment F{i} on Meeting {{ ...F{i + 1} }}" for i in range(levels))
    document = f"{{ meetings {{ ...F0 }} }} {fragments} fragment F{levels} on Meeting {{ year }}"
    result = gateway.query(document)
    assert code_of(result) == "QUERY_TOO_COMPLEX"


def reachable_frames(root: object) -> int:
    """Frames and tracebacks reachable from `root` through instances (not through classes,
    modules or functions, which lead to everything)."""
    skip = (type, types.ModuleType, types.FunctionType)
    seen: set[int] = set()
    pending: list[object] = [root]
    found = 0
    while pending and len(seen) < 200_000:
        item = pending.pop()
        if id(item) in seen or isinstance(item, skip):
            continue
        seen.add(id(item))
        if isinstance(item, types.FrameType | types.TracebackType):
            found += 1
            continue
        pending.extend(gc.get_referents(item))
    return found


def test_remembered_validation_errors_keep_no_frames_alive(gateway: Gateway) -> None:
    # A bad literal is an error validation catches from the scalar's parser, so it comes with
    # a traceback; the memo must not keep that validation's frames (and visitors) with it.
    instant = f"not an instant {uuid.uuid4()}"
    query = f'{{ meetings(filter: {{ dateStart: {{ gt: "{instant}" }} }}) {{ meetingKey }} }}'
    assert code_of(gateway.query(query)) == "BAD_USER_INPUT"
    remembered = [errors for key, errors in _VALIDATED.items() if key[-1] == query]
    assert remembered
    assert reachable_frames(remembered) == 0
