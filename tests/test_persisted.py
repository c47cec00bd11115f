"""Persisted queries: Apollo's APQ over POST and GET, shared through the cache backend, and
trusted documents from a manifest file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from sessiongraph.app import create_app
from sessiongraph.persisted import TrustedDocumentsError
from tests._servers import Gateway, Sandbox, sandbox_settings

QUERY = "{ meeting(key: 1216) { meetingName } }"
ANSWER = {"data": {"meeting": {"meetingName": "Belgian Grand Prix"}}}
OTHER = "{ meeting(key: 1217) { meetingName } }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}


def code_of(response: Any) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_apq_registers_then_answers_by_hash(gateway: Gateway, method: str) -> None:
    text = QUERY if method == "POST" else OTHER

    def send(**fields: Any) -> Any:
        if method == "POST":
            return gateway.http.post("/graphql", json=fields)
        params = {k: json.dumps(v) if k == "extensions" else v for k, v in fields.items()}
        return gateway.http.get("/graphql", params=params)

    unknown = send(extensions=apq(text))
    assert unknown.status_code == 200
    assert unknown.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    assert code_of(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    assert unknown.headers["cache-control"] == "private, no-cache, must-revalidate"
    registered = send(query=text, extensions=apq(text))
    assert "errors" not in registered.json()
    by_hash = send(extensions=apq(text))
    assert by_hash.json() == registered.json()
    assert by_hash.headers["cache-control"].startswith("public")


def test_not_found_keeps_its_status_under_the_spec_media_type(gateway: Gateway) -> None:
    response = gateway.http.post(
        "/graphql",
        json={"extensions": apq("{ __typename }")},
        headers={"Accept": "application/graphql-response+json"},
    )
    assert response.status_code == 200  # Apollo's link reads the body of a 200
    assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "extensions",
    [
        {"persistedQuery": {"version": 1, "sha256Hash": "0" * 63}},
        {"persistedQuery": {"version": 1, "sha256Hash": "A" * 64}},
        {"persistedQuery": {"version": 1, "sha256Hash": "f" * 100_000}},
        {"persistedQuery": {"version": 1, "sha256Hash": 12}},
        {"persistedQuery": {"version": 2, "sha256Hash": sha(QUERY)}},
        {"persistedQuery": "yes"},
    ],
)
def test_forged_hashes_are_bad_input(gateway: Gateway, extensions: dict[str, Any]) -> None:
    response = gateway.http.post("/graphql", json={"extensions": extensions})
    assert response.status_code == 200
    assert code_of(response) == "BAD_USER_INPUT"


def test_a_hash_that_does_not_match_its_query_is_refused(gateway: Gateway) -> None:
    never_sent = "{ meeting(key: 1219) { meetingName } }"
    response = gateway.http.post("/graphql", json={"query": QUERY, "extensions": apq(never_sent)})
    assert code_of(response) == "BAD_USER_INPUT"
    # ...and registered nothing under the other document's hash.
    assert code_of(gateway.http.post("/graphql", json={"extensions": apq(never_sent)})) == (
        "PERSISTED_QUERY_NOT_FOUND"
    )


def test_batches_expand_each_operation(gateway: Gateway) -> None:
    gateway.http.post("/graphql", json={"query": QUERY, "extensions": apq(QUERY)})
    batch = gateway.http.post(
        "/graphql", json=[{"extensions": apq(QUERY)}, {"query": "{ __typename }"}]
    )
    assert batch.json() == [ANSWER, {"data": {"__typename": "Query"}}]


def test_apq_can_be_switched_off(make_gateway: Any) -> None:
    gateway = make_gateway(persisted_queries=False)
    gateway.http.post("/graphql", json={"query": QUERY, "extensions": apq(QUERY)})
    response = gateway.http.post("/graphql", json={"extensions": apq(QUERY)})
    assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"


# --- trusted documents -------------------------------------------------------------------------


def apollo_manifest(path: Path, *documents: str) -> Path:
    operations = [
        {"id": sha(d), "name": f"Op{i}", "type": "query", "body": d}
        for i, d in enumerate(documents)
    ]
    path.write_text(
        json.dumps(
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
        )
    )
    return path


@pytest.mark.parametrize("style", ["apollo", "codegen"])
def test_trusted_documents_by_hash_or_document_id(
    make_gateway: Any, sandbox: Sandbox, tmp_path: Path, style: str
) -> None:
    path = tmp_path / "documents.json"
    if style == "apollo":
        apollo_manifest(path, QUERY)
    else:
        path.write_text(json.dumps({sha(QUERY): QUERY}))
    gateway = make_gateway(persisted_documents_file=path, persisted_documents_only=True)
    assert gateway.http.post("/graphql", json={"extensions": apq(QUERY)}).json() == ANSWER
    by_id = gateway.http.post("/graphql", json={"documentId": f"sha256:{sha(QUERY)}"})
    assert by_id.json() == ANSWER
    by_get = gateway.http.get("/graphql", params={"documentId": f"sha256:{sha(QUERY)}"})
    assert by_get.json() == ANSWER
    assert gateway.http.post("/graphql", json={"query": QUERY}).json() == ANSWER
    before = sandbox.requests("openf1")
    spec = {"Accept": "application/graphql-response+json"}
    refused = gateway.http.post("/graphql", json={"query": OTHER}, headers=spec)
    assert refused.status_code == 400
    assert code_of(refused) == "PERSISTED_QUERY_NOT_IN_LIST"
    registering = gateway.http.post("/graphql", json={"query": OTHER, "extensions": apq(OTHER)})
    assert code_of(registering) == "PERSISTED_QUERY_NOT_IN_LIST"
    assert sandbox.requests("openf1") == before


def test_conflicting_document_id_and_query(make_gateway: Any, tmp_path: Path) -> None:
    gateway = make_gateway(persisted_documents_file=apollo_manifest(tmp_path / "m.json", QUERY))
    conflict = gateway.http.post(
        "/graphql", json={"documentId": f"sha256:{sha(QUERY)}", "query": OTHER}
    )
    assert code_of(conflict) == "BAD_USER_INPUT"
    unknown = gateway.http.post("/graphql", json={"documentId": "sha256:" + "0" * 64})
    assert code_of(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    for junk in (12, "", "x" * 1000):
        assert code_of(gateway.http.post("/graphql", json={"documentId": junk})) == (
            "BAD_USER_INPUT"
        )
    # Not in trusted-only mode: any other document still runs.
    assert "errors" not in gateway.http.post("/graphql", json={"query": OTHER}).json()


@pytest.mark.parametrize(
    "content",
    [
        None,
        "not json",
        "[]",
        "{}",
        '{"format": "apollo-persisted-query-manifest", "operations": [{"id": 1}]}',
        '{"a": 1}',
    ],
)
def test_an_unusable_documents_file_stops_start_up(
    sandbox: Sandbox, tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "documents.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TrustedDocumentsError) as raised:
        create_app(sandbox_settings(sandbox, persisted_documents_file=path))
    assert str(path) in str(raised.value)


def test_trusted_only_needs_a_file(sandbox: Sandbox) -> None:
    with pytest.raises(TrustedDocumentsError, match="PERSISTED_DOCUMENTS_FILE"):
        create_app(sandbox_settings(sandbox, persisted_documents_only=True))
