"""The HTTP surface: health, readiness, GraphQL over GET/POST, and bad input of every kind."""

from __future__ import annotations

import gc
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests._servers import Gateway, Sandbox


def code_of(result: dict[str, Any]) -> str:
    code: str = result["errors"][0]["extensions"]["code"]
    return code


def test_healthz(gateway: Gateway) -> None:
    response = gateway.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_lists_upstreams_without_secrets(gateway: Gateway, sandbox: Sandbox) -> None:
    response = gateway.http.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    openf1 = body["upstreams"]["openf1"]
    assert openf1["configured"] is True
    assert openf1["reachable"] is True
    assert openf1["baseUrl"].startswith("http://127.0.0.1:")
    assert body["sandbox"]["openf1"] == openf1["baseUrl"]
    secrets = [v for k, v in sandbox.env.items() if k.endswith(("_KEY", "_PASSWORD"))]
    assert secrets
    for secret in secrets:
        assert secret not in response.text


def test_readyz_is_503_when_a_configured_upstream_is_down(make_gateway: Any) -> None:
    gateway = make_gateway(openf1_url="http://127.0.0.1:9/v1")
    response = gateway.http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["upstreams"]["openf1"]["reachable"] is False


def test_unconfigured_upstreams_are_reported(make_gateway: Any) -> None:
    gateway = make_gateway(guidebook_api_key=None, sqlrace_url=None)
    upstreams = gateway.http.get("/readyz").json()["upstreams"]
    assert upstreams["guidebook"]["configured"] is False
    assert "GUIDEBOOK_API_KEY" in upstreams["guidebook"]["reason"]
    assert upstreams["sqlrace"]["configured"] is False


def test_get_runs_queries_with_a_preflight_header(gateway: Gateway) -> None:
    response = gateway.http.get(
        "/graphql",
        params={"query": "{ meeting(key: 1216) { countryName } }"},
        headers={"Apollo-Require-Preflight": "true"},
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"meeting": {"countryName": "Belgium"}}}


def test_get_never_runs_mutations(gateway: Gateway) -> None:
    response = gateway.http.get(
        "/graphql",
        params={"query": "mutation { __typename }"},
        headers={"Apollo-Require-Preflight": "true"},
    )
    assert response.status_code in (400, 405)
    assert response.json()["errors"][0]["extensions"]["code"]


def test_simple_posts_are_refused_as_csrf(gateway: Gateway, sandbox: Sandbox) -> None:
    query = "{ meeting(key: 1216) { countryName } }"
    attempts = [
        gateway.http.post(
            "/graphql", content=f'{{"query": "{query}"}}', headers={"Content-Type": "text/plain"}
        ),
        gateway.http.post("/graphql", data={"query": query}),
        gateway.http.post("/graphql", content=f'{{"query": "{query}"}}'),
    ]
    for response in attempts:
        assert response.status_code == 400
        assert code_of(response.json()) == "CSRF_PREVENTED"
        assert response.headers["cache-control"] == "no-store"
    assert sandbox.requests("openf1") == 0


@pytest.mark.parametrize("headers", [{}, {"Accept": "*/*"}, {"Content-Type": "text/plain"}])
def test_get_is_never_refused_as_csrf(gateway: Gateway, headers: dict[str, str]) -> None:
    # urql's default client sends queries as GET without a Content-Type.
    query = "{ meeting(key: 1216) { countryName } }"
    response = gateway.http.get("/graphql", params={"query": query}, headers=headers)
    assert response.json() == {"data": {"meeting": {"countryName": "Belgium"}}}


def test_a_browser_opening_a_query_link_gets_the_playground(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    response = gateway.http.get(
        "/graphql",
        params={"query": "{ meeting(key: 1216) { countryName } }"},
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert sandbox.requests("openf1") == 0  # shown in the editor, not run


def test_cors_preflights_allow_the_clients_headers(make_gateway: Any) -> None:
    origin = "https://app.example"
    gateway = make_gateway(cors_origins=[origin])
    asked = (
        "apollo-require-preflight,x-apollo-operation-name,authorization,content-type,"
        "x-request-id,x-guidebook-api-key,traceparent"
    )
    response = gateway.http.options(
        "/graphql",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert response.status_code == 200, response.text
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert set(asked.split(",")) <= allowed
    assert int(response.headers["access-control-max-age"]) >= 600
    refused = gateway.http.options(
        "/graphql",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert refused.status_code == 400
    answer = gateway.http.get(
        "/graphql",
        params={"query": "{ __typename }"},
        headers={"Origin": origin, "Apollo-Require-Preflight": "true"},
    )
    assert answer.headers["access-control-allow-origin"] == origin
    assert "etag" in answer.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": "query A { __typename } query B { __typename }"}, "several operations"),
        ({"query": "{ __typename } query B { __typename }"}, "several operations"),
        ({"query": "query A { __typename }", "operationName": "B"}, "B"),
        (
            {"query": "query A { __typename } mutation B { __typename }", "operationName": "C"},
            "C",
        ),
    ],
)
def test_operations_that_cannot_be_resolved_are_refused(
    gateway: Gateway, body: dict[str, Any], message: str
) -> None:
    spec = {"Accept": "application/graphql-response+json"}
    refused = gateway.http.post("/graphql", json=body, headers=spec)
    assert refused.status_code == 400
    (error,) = refused.json()["errors"]
    assert error["extensions"]["code"] == "OPERATION_RESOLUTION_FAILURE"
    assert message in error["message"]
    legacy = gateway.http.post("/graphql", json=body)
    assert legacy.status_code == 200
    assert code_of(legacy.json()) == "OPERATION_RESOLUTION_FAILURE"
    chosen = gateway.http.post(
        "/graphql",
        json={"query": "query A { __typename } query B { __typename }", "operationName": "B"},
    )
    assert chosen.json() == {"data": {"__typename": "Query"}}


def test_csrf_prevention_can_be_switched_off(make_gateway: Any) -> None:
    gateway = make_gateway(csrf_prevention=False)
    response = gateway.http.get("/graphql", params={"query": "{ meeting(key: 1216) { year } }"})
    assert response.json() == {"data": {"meeting": {"year": 2023}}}


def test_request_ids_are_echoed_or_made(gateway: Gateway) -> None:
    given = gateway.http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"X-Request-ID": "abc-123"}
    )
    assert given.headers["x-request-id"] == "abc-123"
    made = gateway.http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"X-Request-ID": "x" * 200}
    )
    assert len(made.headers["x-request-id"]) == 32


def test_graphql_response_media_type_has_real_status_codes(gateway: Gateway) -> None:
    accept = {"Accept": "application/graphql-response+json, application/json;q=0.9"}
    invalid = gateway.http.post("/graphql", json={"query": "{ nope }"}, headers=accept)
    assert invalid.status_code == 400
    assert invalid.headers["content-type"].startswith("application/graphql-response+json")
    assert "data" not in invalid.json()
    fine = gateway.http.post(
        "/graphql", json={"query": "{ meeting(key: 1216) { year } }"}, headers=accept
    )
    assert fine.status_code == 200
    assert fine.headers["content-type"].startswith("application/graphql-response+json")
    partial = gateway.http.post(
        "/graphql", json={"query": "{ meeting(key: 1) { year } }"}, headers=accept
    )
    assert partial.status_code == 200
    assert partial.json()["data"] == {"meeting": None}
    legacy = gateway.http.post("/graphql", json={"query": "{ nope }"})
    assert legacy.status_code == 200
    assert legacy.headers["content-type"] == "application/json"


def test_metrics(gateway: Gateway) -> None:
    gateway.query(
        "query Season { meetings(filter: {year: {eq: 2023}}) { meetingKey } "
        "f1Sessions(filter: {sessionKey: {eq: 9140}}) { meeting { year } } }"
    )
    text = gateway.http.get("/metrics").text
    assert 'sessiongraph_graphql_requests_total{operation="Season",outcome="ok"}' in text
    assert (
        'sessiongraph_upstream_requests_total{method="GET",status="200",upstream="openf1"}' in text
    )
    assert "sessiongraph_dataloader_batch_size" in text
    assert 'sessiongraph_circuit_breaker_state{upstream="openf1"}' in text


def test_graphiql_for_browsers(gateway: Gateway) -> None:
    response = gateway.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


def test_unparsable_json_is_a_graphql_shaped_400(gateway: Gateway) -> None:
    response = gateway.http.post(
        "/graphql", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert code_of(response.json()) == "BAD_REQUEST"


def test_missing_query_is_a_400(gateway: Gateway) -> None:
    response = gateway.post({"variables": {}})
    assert response.status_code == 400
    assert code_of(response.json()) == "BAD_REQUEST"


def test_syntax_errors_are_coded(gateway: Gateway) -> None:
    result = gateway.query("{ meetings { ")
    assert code_of(result) == "GRAPHQL_PARSE_FAILED"


def test_unknown_fields_are_validation_errors(gateway: Gateway) -> None:
    result = gateway.query("{ meetings { nope } }")
    assert code_of(result) == "GRAPHQL_VALIDATION_FAILED"
    assert "nope" in result["errors"][0]["message"]


def test_wrong_argument_types_are_validation_errors(gateway: Gateway) -> None:
    result = gateway.query('{ meeting(key: "x") { meetingName } }')
    assert code_of(result) == "GRAPHQL_VALIDATION_FAILED"


def test_wrong_variable_types_are_bad_user_input(gateway: Gateway) -> None:
    result = gateway.query(
        "query($k: Int) { meeting(key: $k) { meetingName } }", {"k": "not a number"}
    )
    assert code_of(result) == "BAD_USER_INPUT"


def test_bad_datetimes_are_bad_user_input(gateway: Gateway) -> None:
    query = "query($f: DateTimeFilter) { f1Sessions(filter: {dateStart: $f}) { sessionKey } }"
    for value in ("2023-09", "2023-09-16", "yesterday", 12):
        result = gateway.query(query, {"f": {"gte": value}})
        assert code_of(result) == "BAD_USER_INPUT", value
        assert "DateTime" in result["errors"][0]["message"]


def test_too_many_in_values_are_bad_user_input(gateway: Gateway) -> None:
    keys = list(range(101))
    result = gateway.query(
        "query($k: [Int!]) { meetings(filter: {year: {in: $k}}) { year } }", {"k": keys}
    )
    assert code_of(result) == "BAD_USER_INPUT"


def test_deep_queries_are_too_complex(gateway: Gateway) -> None:
    inner = "meetingName"
    for _ in range(6):
        inner = f"sessions {{ meeting {{ {inner} }} }}"
    result = gateway.query(f"{{ meetings {{ {inner} }} }}")
    assert code_of(result) == "QUERY_TOO_COMPLEX"


def test_alias_floods_are_too_complex(gateway: Gateway) -> None:
    aliases = " ".join(f"a{i}: meeting(key: 1216) {{ year }}" for i in range(40))
    assert code_of(gateway.query(f"{{ {aliases} }}")) == "QUERY_TOO_COMPLEX"


def test_token_floods_are_too_complex(gateway: Gateway) -> None:
    fields = " ".join(["year"] * 3000)
    assert code_of(gateway.query(f"{{ meetings {{ {fields} }} }}")) == "QUERY_TOO_COMPLEX"


def test_oversized_bodies_are_refused(gateway: Gateway) -> None:
    response = gateway.post({"query": "{ meetings { year } }", "pad": "x" * 2_000_000})
    assert response.status_code == 413
    assert code_of(response.json()) == "REQUEST_TOO_LARGE"


def test_non_object_variables_are_refused(gateway: Gateway) -> None:
    response = gateway.post({"query": "{ meetings { year } }", "variables": [1, 2]})
    assert response.status_code in (200, 400)
    assert response.json()["errors"]


def test_unsupported_methods(gateway: Gateway) -> None:
    response = gateway.http.put("/graphql", json={"query": "{ meetings { year } }"})
    assert response.status_code == 405


def test_cors_origins(make_gateway: Any) -> None:
    gateway = make_gateway(cors_origins="https://app.example")
    response = httpx.options(
        gateway.url + "/graphql",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    denied = httpx.options(
        gateway.url + "/graphql",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in denied.headers


def test_replayed_responses_count_under_their_operation(make_gateway: Any) -> None:
    gateway = make_gateway(cache_url="memory://")
    body = {"query": "query Replayed { meeting(key: 1216) { year } }", "operationName": "Replayed"}
    for _ in range(3):
        assert gateway.post(body).status_code == 200
    text = gateway.http.get("/metrics").text
    assert 'sessiongraph_graphql_requests_total{operation="Replayed",outcome="replayed"}' in text


def test_costly_queries_are_too_complex(gateway: Gateway, sandbox: Sandbox) -> None:
    nested = "{ meetings { sessions { meeting { sessions { meeting { sessions { year } } } } } } }"
    result = gateway.query(nested)
    assert code_of(result) == "QUERY_TOO_COMPLEX"
    assert "cost" in result["errors"][0]["message"]
    assert sandbox.requests("openf1") == 0


def test_page_sizes_count_towards_cost(make_gateway: Any) -> None:
    gateway = make_gateway(max_query_cost=1000)
    query = "query($n: Int) { guides(first: $n) { edges { node { name } } } }"
    assert "errors" not in gateway.query(query, {"n": 10})
    assert code_of(gateway.query(query, {"n": 600})) in ("QUERY_TOO_COMPLEX", "BAD_USER_INPUT")


def test_batches_are_bounded(gateway: Gateway) -> None:
    one = {"query": "{ __typename }"}
    assert gateway.post([one] * 10).status_code == 200
    too_many = gateway.post([one] * 11)
    assert too_many.status_code == 400
    assert code_of(too_many.json()) == "BAD_REQUEST"


def test_introspection_and_playground_can_be_switched_off(make_gateway: Any) -> None:
    gateway = make_gateway(introspection=False, graphiql=False)
    result = gateway.query("{ __schema { queryType { name } } }")
    assert code_of(result) == "GRAPHQL_VALIDATION_FAILED"
    assert gateway.http.get("/graphql", headers={"Accept": "text/html"}).status_code == 404
    assert gateway.query("{ meeting(key: 1216) { year } }") == {"data": {"meeting": {"year": 2023}}}


def test_answered_requests_leave_no_reference_cycles(gateway: Gateway) -> None:
    """What a request made is freed when its answer goes: the executor, context, loaders and
    types built for it wait for no garbage collection, whose passes every request pays for."""
    queries = [
        "{ meetings(filter: {year: {eq: 2023}}) { sessions { sessionName meeting { meetingName } "
        "} } }",
        "{ guides(first: 2) { nodes { guidebookId name } } connections { name sessions(first: 2) "
        "{ nodes { key } } } }",
        "{ f1Session(key: 9839) { laps(limit: 5) { lapNumber } } }",
        "{ meetings { nope } }",  # refused by validation
    ]
    for query in queries:  # warm: the catalogue, tokens, memos made once per process
        gateway.query(query)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for query in queries:
            gateway.query(query)
        gc.collect()
        left = [
            obj
            for obj in gc.garbage
            if str(getattr(obj, "__module__", "")).startswith(("sessiongraph", "graphql"))
            or type(obj).__module__.startswith(("sessiongraph", "graphql", "strawberry"))
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert [repr(obj)[:80] for obj in left] == []


def test_a_served_worker_freezes_its_start_up_heap() -> None:
    """What `sessiongraph serve` builds before answering lives as long as the worker: frozen,
    the collector's full passes skip it."""
    script = (
        "import gc\n"
        "from sessiongraph.app import create_served_app\n"
        "create_served_app()\n"
        "print(gc.get_freeze_count())\n"
    )
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert int(done.stdout.split()[-1]) > 10_000, done.stderr
