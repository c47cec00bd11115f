"""Real frontend clients (urql, Apollo Client, Chromium) and schema tooling (GraphQL Codegen,
GraphQL Inspector, graphql-js), pinned from npm, against the gateway and `schema.graphql`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLSyntaxError,
    ObjectTypeDefinitionNode,
    OperationDefinitionNode,
    OperationType,
    SchemaDefinitionNode,
    parse,
)
from playwright.sync_api import CDPSession, Page

from tests._servers import Gateway

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCHEMA = ROOT / "schema.graphql"
README = ROOT / "README.md"
NODE = shutil.which("node") or "node"

MEETING_QUERY = (
    "query MeetingSessions { meeting(key: 1216) { meetingName sessions { sessionName } } }"
)
DEFER_QUERY = """
query DeferredSessions {
  meeting(key: 1216) {
    meetingName
    ... @defer { sessions { sessionName } }
  }
}
"""
# An F1 session and a SQL Race connection by global id; only the first is a `Session`.
SESSION_NODES_QUERY = """
query SessionNodes {
  nodes(ids: ["RjFTZXNzaW9uOjkxNDA=", "Q29ubmVjdGlvbjpTaW11bGF0b3I="]) {
    __typename id
    ... on Session { name startsAt }
  }
}
"""
# Everything a browser client may send cross-origin, as the contract lists it.
CLIENT_HEADERS = (
    "Apollo-Require-Preflight",
    "X-Apollo-Operation-Name",
    "Authorization",
    "Content-Type",
    "X-Request-ID",
    "X-Guidebook-Api-Key",
    "traceparent",
)
# The federation spec's directives, which the client-facing SDL must not carry.
FEDERATION_DIRECTIVES = {
    "key",
    "link",
    "external",
    "requires",
    "provides",
    "extends",
    "shareable",
    "inaccessible",
    "override",
    "tag",
    "composeDirective",
    "interfaceObject",
}


def installed() -> None:
    if not (HERE / "node_modules" / ".package-lock.json").exists():
        pytest.fail(f"{HERE}/node_modules is missing: `make clients-deps` runs `npm ci` in {HERE}")


def node_tool(name: str) -> Path:
    installed()
    tool = HERE / "node_modules" / ".bin" / name
    if not tool.exists():
        pytest.fail(f"{tool} is missing: `make clients-deps` runs `npm ci` in {HERE}")
    return tool


def run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our scripts and the pinned tools, no shell
        command, cwd=HERE, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_node(script: str, *args: str) -> Any:
    """Runs one of this folder's scripts; they print one JSON value."""
    installed()
    result = run([NODE, str(HERE / script), *args])
    assert result.returncode == 0, f"node {script} failed:\n{result.stderr}"
    return json.loads(result.stdout)


def answer_errors(request: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = json.loads(request["responseText"]).get("errors") or []
    return errors


def session_names(meeting: dict[str, Any]) -> list[str]:
    return [session["sessionName"] for session in meeting["sessions"]]


def test_urql_default_client_queries_over_get(gateway: Gateway) -> None:
    out = run_node("urql_query.mjs", gateway.url + "/graphql", MEETING_QUERY)

    [request] = out["requests"]
    assert request["method"] == "GET"  # urql's default for queries within the URL limit
    assert "content-type" not in request["headers"]  # a "simple" request: CSRF must let it by
    assert out["error"] is None, out["error"]
    assert out["data"]["meeting"]["meetingName"] == "Belgian Grand Prix"
    assert "Race" in session_names(out["data"]["meeting"])


@pytest.mark.parametrize("mode", ["post", "get"])
def test_apollo_persisted_queries_register_then_hit(
    make_gateway: Callable[..., Gateway], mode: str
) -> None:
    gateway = make_gateway(cache_url="memory://")
    hashed_method = mode.upper()  # `useGETForHashedQueries` sends hash-only requests as GET
    out = run_node("apollo_apq.mjs", gateway.url + "/graphql", MEETING_QUERY, mode)
    first, second = out["first"], out["second"]

    assert first["error"] is None, first["error"]
    assert len(first["requests"]) == 2, first["requests"]
    miss, register = first["requests"]
    assert miss["method"] == hashed_method
    assert "query" not in miss["request"], miss["request"]
    sha = miss["request"]["extensions"]["persistedQuery"]["sha256Hash"]
    assert miss["status"] == 200, miss
    [error] = answer_errors(miss)
    assert error["message"] == "PersistedQueryNotFound"
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert miss["responseHeaders"]["cache-control"] == "private, no-cache, must-revalidate"
    # Apollo resends with the query (as a POST, the query may be long) and the same hash.
    assert register["request"]["query"]
    assert register["request"]["extensions"]["persistedQuery"]["sha256Hash"] == sha
    assert hashlib.sha256(register["request"]["query"].encode()).hexdigest() == sha
    assert register["status"] == 200
    assert first["data"]["meeting"]["meetingName"] == "Belgian Grand Prix"

    # A fresh client (new link and cache) sends the hash alone, and the gateway knows it.
    assert second["error"] is None, second["error"]
    [hit] = second["requests"]
    assert hit["method"] == hashed_method
    assert "query" not in hit["request"], hit["request"]
    assert hit["status"] == 200
    assert not answer_errors(hit)
    assert second["data"] == first["data"]
    if hashed_method == "GET":  # what a CDN may cache: the short URL and a public answer
        assert hit["responseHeaders"]["cache-control"].startswith("public, max-age=")
        assert hit["responseHeaders"]["etag"].startswith('"')


def test_persisted_query_hash_must_match_its_query(gateway: Gateway) -> None:
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    response = gateway.post({"query": MEETING_QUERY, "extensions": extensions})

    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert "data" not in body or body["data"] is None


def multipart_payloads(content_type: str, text: str) -> list[dict[str, Any]]:
    """The JSON payloads of a `multipart/mixed` answer, heartbeats left out."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    assert match, content_type
    payloads = []
    for part in text.split("--" + match.group(1)):
        _, _, body = part.partition("\r\n\r\n")
        if body.strip().startswith("{"):
            payload = json.loads(body)
            if "hasNext" in payload:
                payloads.append(payload)
    return payloads


def test_apollo_client_receives_deferred_fields(gateway: Gateway) -> None:
    out = run_node("apollo_defer.mjs", gateway.url + "/graphql", DEFER_QUERY)

    [request] = out["requests"]
    assert request["headers"]["accept"].startswith("multipart/mixed")
    assert out["error"] is None, out["error"]
    content_type = request["responseHeaders"]["content-type"]
    assert content_type.startswith("multipart/mixed"), request["responseText"]
    payloads = multipart_payloads(content_type, request["responseText"])
    assert len(payloads) >= 2, request["responseText"]
    assert "sessions" not in payloads[0]["data"]["meeting"]  # the deferred part came later
    assert payloads[-1]["hasNext"] is False
    meeting = out["data"]["meeting"]
    assert meeting["meetingName"] == "Belgian Grand Prix"
    assert "Race" in session_names(meeting)


def schema_has_subscriptions(schema: DocumentNode) -> bool:
    for definition in schema.definitions:
        if isinstance(definition, SchemaDefinitionNode):
            return any(
                op.operation is OperationType.SUBSCRIPTION for op in definition.operation_types
            )
    return any(
        isinstance(definition, ObjectTypeDefinitionNode) and definition.name.value == "Subscription"
        for definition in schema.definitions
    )


def readme_operations() -> dict[str, str]:
    """The README's ```graphql blocks that hold operations and fragments only (no SDL), each
    under a name that says where it is (e.g. `README-line-38-Season`)."""
    subscriptions = schema_has_subscriptions(parse(SCHEMA.read_text()))
    readme = README.read_text()
    blocks = {}
    for match in re.finditer(r"^```graphql\n(.*?)^```", readme, re.M | re.S):
        block = match.group(1)
        line = readme.count("\n", 0, match.start(1)) + 1
        try:
            document = parse(block)
        except GraphQLSyntaxError as error:
            if re.match(r"\s*(query|mutation|subscription|fragment|\{)", block):
                pytest.fail(f"the README example at line {line} does not parse: {error}")
            continue  # an SDL excerpt, not a document
        executable = (OperationDefinitionNode, FragmentDefinitionNode)
        if not all(isinstance(d, executable) for d in document.definitions):
            continue
        if re.search(r"\b_(entities|service)\b", block):
            continue  # what a federation gateway sends: only subgraph.graphql has those fields
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if not subscriptions and any(
            op.operation is OperationType.SUBSCRIPTION for op in operations
        ):
            continue
        names = [d.name.value for d in document.definitions if isinstance(d, executable) and d.name]
        blocks["-".join(["README-line", str(line), *names[:1]])] = block
    return blocks


def write_documents(folder: Path, documents: dict[str, str]) -> str:
    """One `<name>.graphql` file per document; returns their glob."""
    folder.mkdir(parents=True)
    for name, document in documents.items():
        (folder / f"{name}.graphql").write_text(document)
    return str(folder / "*.graphql")


def codegen(out: Path, documents: dict[str, str]) -> Path:
    """Types for `documents` and the fragment matcher's output, generated into `out`."""
    pattern = write_documents(out / "documents", documents)
    node_tool("graphql-codegen")
    result = run([NODE, str(HERE / "codegen.mjs"), str(SCHEMA), pattern, str(out / "generated")])
    assert result.returncode == 0, result.stderr
    return out / "generated"


def test_schema_file_builds_with_graphql_js() -> None:
    built = run_node("build_schema.mjs", str(SCHEMA))

    assert not FEDERATION_DIRECTIVES & set(built["directives"]), built["directives"]
    assert {"Node", "Session"} <= set(built["abstractTypes"])
    assert "rfc3339" in (built["dateTimeSpecifiedBy"] or ""), built


def test_readme_operations_validate_with_graphql_inspector(tmp_path: Path) -> None:
    documents = readme_operations()
    assert len(documents) >= 5, "the README's example operations were not found"
    pattern = write_documents(tmp_path / "documents", documents)

    result = run([str(node_tool("graphql-inspector")), "validate", pattern, str(SCHEMA)])
    assert result.returncode == 0, result.stdout + result.stderr


# Compiled with the generated types: DateTime must come out as `string` (not `any`/`unknown`).
TYPE_CHECK_QUERY = "query ClientsTypeCheck { f1Session(key: 9140) { startsAt } }"
TYPE_CHECKS = """\
import type { ClientsTypeCheckQuery } from "./operations";
import result from "./possible-types";

type StartsAt = NonNullable<ClientsTypeCheckQuery["f1Session"]>["startsAt"];
const startsAt: StartsAt = "2023-07-30T13:00:00Z";
// @ts-expect-error: a number is no DateTime (this line compiles if the scalar is not a string)
const notAnInstant: StartsAt = 0;
const sessionTypes: string[] = result.possibleTypes["Session"] ?? [];
export const checked = [startsAt, notAnInstant, ...sessionTypes];
"""
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "target": "ES2022",
        "module": "ESNext",
        "moduleResolution": "Bundler",
        "types": [],
    },
    "include": ["*.ts"],
}


def test_codegen_types_for_readme_operations_typecheck(tmp_path: Path) -> None:
    documents = readme_operations()
    assert len(documents) >= 5, "the README's example operations were not found"
    generated = codegen(tmp_path, {**documents, "clients-type-check": TYPE_CHECK_QUERY})

    possible = json.loads((generated / "possible-types.json").read_text())["possibleTypes"]
    assert "F1Session" in possible["Session"]
    assert "Meeting" in possible["Node"]
    (generated / "check.ts").write_text(TYPE_CHECKS)
    (generated / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    result = run([str(node_tool("tsc")), "--project", str(generated / "tsconfig.json")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_apollo_cache_reads_session_fragments_with_generated_possible_types(
    gateway: Gateway, tmp_path: Path
) -> None:
    generated = codegen(tmp_path, {"session-nodes": SESSION_NODES_QUERY})
    out = run_node(
        "apollo_possible_types.mjs",
        gateway.url + "/graphql",
        str(generated / "possible-types.json"),
        SESSION_NODES_QUERY,
    )

    assert out["error"] is None, out["error"]
    f1_session, connection = out["data"]["nodes"]
    assert f1_session["__typename"] == "F1Session"
    assert f1_session["name"]  # read back through `... on Session` from the normalized cache
    assert f1_session["startsAt"]
    assert connection["__typename"] == "Connection"
    assert "name" not in connection


PAGE_HTML = b"<!doctype html><meta charset=utf-8><title>another origin</title>"
# Runs in the page: a fetch, and whatever the page may read of its answer.
FETCH = """
async ([url, init]) => {
  try {
    const response = await fetch(url, init);
    return { status: response.status, type: response.headers.get("content-type"),
             body: await response.text() };
  } catch (error) {
    return { failed: String(error) };
  }
}
"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE_HTML)))
        self.end_headers()
        self.wfile.write(PAGE_HTML)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_origin() -> Iterator[str]:
    """A page served from another origin than the gateway's (same host, another port)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, name="page", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def watch_preflights(page: Page) -> list[dict[str, Any]]:
    """Answers to the CORS preflights Chromium sends for the page (DevTools: `Preflight`)."""
    preflights: list[dict[str, Any]] = []

    def received(event: dict[str, Any]) -> None:
        if event.get("type") == "Preflight":
            preflights.append(event["response"])

    cdp: CDPSession = page.context.new_cdp_session(page)
    cdp.on("Network.responseReceived", received)
    cdp.send("Network.enable")
    return preflights


def test_browser_on_another_origin_gets_data_after_preflight(
    make_gateway: Callable[..., Gateway], gateway: Gateway, page_origin: str, browser: Page
) -> None:
    cors = make_gateway(cors_origins=[page_origin])
    page = browser
    preflights = watch_preflights(page)
    page.goto(page_origin + "/")
    url = cors.url + "/graphql?" + urlencode({"query": MEETING_QUERY}, quote_via=quote)
    headers = {"Apollo-Require-Preflight": "true"}

    answer = page.evaluate(FETCH, [url, {"headers": headers}])
    assert "failed" not in answer, answer
    assert answer["status"] == 200, answer
    body = json.loads(answer["body"])
    assert "errors" not in body, body
    assert body["data"]["meeting"]["meetingName"] == "Belgian Grand Prix"
    [preflight] = preflights
    assert preflight["status"] == 200, preflight
    assert preflight["url"] == url

    # The control: the same fetch to a gateway without CORS settings is blocked by Chromium.
    uncors = page.evaluate(FETCH, [url.replace(cors.url, gateway.url), {"headers": headers}])
    assert "failed" in uncors, uncors

    # A "simple" POST needs no preflight, so the gateway itself must refuse it.
    simple = {"method": "POST", "headers": {"Content-Type": "text/plain"}}
    simple["body"] = json.dumps({"query": MEETING_QUERY})
    refused = page.evaluate(FETCH, [cors.url + "/graphql", simple])
    assert refused.get("status") == 400, refused
    assert json.loads(refused["body"])["errors"][0]["extensions"]["code"] == "CSRF_PREVENTED"


def test_preflight_allows_client_headers(make_gateway: Callable[..., Gateway]) -> None:
    origin = "http://localhost:3000"
    gateway = make_gateway(cors_origins=[origin])
    requested = ", ".join(name.lower() for name in CLIENT_HEADERS)
    response = gateway.http.options(
        "/graphql",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": requested,
        },
    )

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == origin
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {name.lower() for name in CLIENT_HEADERS} <= allowed
    assert int(response.headers["access-control-max-age"]) > 0


def test_simple_post_without_preflight_header_is_refused(gateway: Gateway) -> None:
    response = gateway.http.post(
        "/graphql",
        content=json.dumps({"query": MEETING_QUERY}),
        headers={"Content-Type": "text/plain"},
    )

    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "CSRF_PREVENTED"


def test_graphql_over_http_audit_passes_every_requirement(gateway: Gateway) -> None:
    """graphql-http's audit: every MUST, SHOULD and MAY (the MAYs include the GET requests
    CSRF prevention used to refuse)."""
    results = run_node("audit.mjs", gateway.url + "/graphql")
    assert len(results) > 50
    failed = [f"{r['name']}: {r['reason']}" for r in results if r["status"] != "ok"]
    assert failed == []
