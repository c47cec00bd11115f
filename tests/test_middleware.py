"""Request hardening: credential headers sent once, bodies in time, JSON-shaped HTTP errors."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest

from tests._servers import MUTATION_TOKEN, Gateway, Sandbox

QUERY = b'{"query": "{ guides { totalCount } }"}'
VALID = f"Bearer {MUTATION_TOKEN}".encode()


def raw_post(gateway: Gateway, headers: list[tuple[bytes, bytes]], body: bytes = QUERY) -> Any:
    """POST with the exact header list given (httpx would merge repeated names)."""
    request = httpx.Request(
        "POST",
        gateway.url + "/graphql",
        headers=[(b"content-type", b"application/json"), *headers],
        content=body,
    )
    return gateway.http.send(request)


@pytest.mark.parametrize(
    "headers",
    [
        [(b"authorization", VALID), (b"authorization", b"x")],
        [(b"authorization", VALID), (b"authorization", b"")],
        [(b"Authorization", b"x"), (b"AUTHORIZATION", VALID)],
        [(b"x-guidebook-api-key", b"a"), (b"X-Guidebook-Api-Key", b"b")],
        [(b"proxy-authorization", b"a"), (b"proxy-authorization", b"a")],
    ],
)
def test_credential_headers_sent_twice_are_refused(
    make_gateway: Any, sandbox: Sandbox, headers: list[tuple[bytes, bytes]]
) -> None:
    gateway = make_gateway(require_token_for_queries=True, cache_url="memory://")
    response = raw_post(gateway, headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    mutation = b'{"query": "mutation { deleteSession(input: {id: 1}) { deletedId } }"}'
    assert raw_post(gateway, headers, mutation).status_code == 400
    assert sandbox.requests("guidebook") == 0


def test_answers_replay_only_for_the_credential_that_was_checked(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(require_token_for_queries=True, cache_url="memory://")
    allowed = raw_post(gateway, [(b"authorization", VALID)])
    assert allowed.json()["data"]["guides"]["totalCount"] == 2
    for headers in ([], [(b"authorization", b"x")], [(b"authorization", b"Bearer nope")]):
        refused = raw_post(gateway, headers)
        codes = {e["extensions"]["code"] for e in refused.json()["errors"]}
        assert codes <= {"UNAUTHENTICATED", "FORBIDDEN"}, refused.text
        assert "data" not in refused.json() or refused.json()["data"] is None


@pytest.mark.parametrize(
    "query",
    [
        "{ meetingz { meetingName } }",
        "{ guides { totalCont } }",
        "query { __schema { types { name } } }",
        "{ meetings { ...F } } fragment F on Meetin { year }",
    ],
)
def test_anonymous_callers_get_no_schema_hints(make_gateway: Any, query: str) -> None:
    gateway = make_gateway(require_token_for_queries=True)
    result = gateway.query(query)
    assert [e["extensions"]["code"] for e in result["errors"]] == ["UNAUTHENTICATED"]
    assert "Did you mean" not in str(result)
    spec = gateway.http.post(
        "/graphql",
        json={"query": query},
        headers={"accept": "application/graphql-response+json"},
    )
    assert spec.status_code == 401
    wrong = gateway.query(query, authorization="Bearer wrong")
    assert [e["extensions"]["code"] for e in wrong["errors"]] == ["FORBIDDEN"]
    hinted = gateway.query(query, authorization=f"Bearer {MUTATION_TOKEN}")
    assert hinted.get("errors") is None or "FORBIDDEN" not in str(hinted)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_get_a_coded_405(gateway: Gateway, method: str) -> None:
    response = gateway.http.request(method, "/graphql", content=QUERY)
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in response.headers["allow"]


def test_unknown_paths_get_a_coded_404(gateway: Gateway) -> None:
    response = gateway.http.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", ["/graphql/", "/healthz/", "/readyz/"])
def test_no_redirect_is_built_from_the_host_header(
    gateway: Gateway, method: str, path: str
) -> None:
    response = gateway.http.request(
        method, path, headers={"host": "evil.example"}, content=QUERY, follow_redirects=False
    )
    assert not 300 <= response.status_code < 400
    assert "evil.example" not in response.headers.get("location", "")


@pytest.mark.parametrize(
    "content_type",
    ["APPLICATION/JSON", "Application/Json; Charset=UTF-8", "application/JSON;charset=utf-8"],
)
def test_media_types_are_case_insensitive(gateway: Gateway, content_type: str) -> None:
    response = gateway.http.post(
        "/graphql",
        content=b'{"query": "{ meeting(key: 1216) { meetingName } }"}',
        headers={"content-type": content_type, "accept": "Application/GraphQL-Response+JSON"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["meeting"]["meetingName"] == "Belgian Grand Prix"
    assert response.headers["content-type"].startswith("application/graphql-response+json")


def connect(gateway: Gateway) -> socket.socket:
    host, port = gateway.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_a_body_that_trickles_is_cut_off(make_gateway: Any) -> None:
    gateway = make_gateway(body_read_timeout_seconds=1)
    with connect(gateway) as sock:
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        answer = b""
        for _ in range(30):
            time.sleep(0.1)
            try:
                sock.sendall(b" ")
            except OSError:
                break
            sock.settimeout(0.01)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            answer += chunk
            if b"REQUEST_TIMEOUT" in answer:
                break
        assert time.monotonic() - started < 2.5
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"REQUEST_TIMEOUT" in answer


def test_slow_bodies_do_not_hold_connections(make_gateway: Any) -> None:
    gateway = make_gateway(body_read_timeout_seconds=1)
    sockets = [connect(gateway) for _ in range(16)]
    for sock in sockets:
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
    time.sleep(1.5)
    for sock in sockets:
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 408")
        sock.close()
    assert gateway.query("{ meeting(key: 1216) { meetingName } }")["data"]["meeting"]
