"""The subgraph SDL composes with @apollo/composition; Hive Gateway serves it over sessiongraph."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sessiongraph.schema.build import build_schema
from sessiongraph.schema.sdl import subgraph_sdl
from tests._servers import Gateway

HERE = Path(__file__).resolve().parent
BIN = HERE / "node_modules" / ".bin"
NODE = shutil.which("node") or "node"


def node_tool(name: str) -> Path:
    tool = BIN / name
    if not tool.exists():
        pytest.fail(f"{tool} is missing: `make federation-deps` runs `npm ci` in {HERE}")
    return tool


def compose(tmp_path: Path, subgraph_url: str) -> Path:
    sdl = tmp_path / "sessiongraph.graphql"
    sdl.write_text(subgraph_sdl(build_schema()))
    supergraph = tmp_path / "supergraph.graphql"
    node_tool("hive-gateway")  # the same `npm ci` installs both
    result = subprocess.run(  # noqa: S603 - our script and paths, no shell
        [NODE, str(HERE / "compose.mjs"), str(sdl), subgraph_url, str(supergraph)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return supergraph


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def hive_gateway(gateway: Gateway, tmp_path: Path) -> Iterator[str]:
    """Hive Gateway serving the composed supergraph, its one subgraph the test gateway."""
    supergraph = compose(tmp_path, gateway.url + "/graphql")
    port = free_port()
    log = (tmp_path / "hive.log").open("w")
    process = subprocess.Popen(  # noqa: S603 - the pinned gateway, no shell
        [
            *(str(node_tool("hive-gateway")), "supergraph", str(supergraph)),
            *("--host", "127.0.0.1", "--port", str(port), "--disable-websockets"),
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "hive.log").read_text()
            try:
                if httpx.get(url + "/readiness", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "hive.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def test_sdl_composes_into_a_supergraph(tmp_path: Path) -> None:
    supergraph = compose(tmp_path, "http://127.0.0.1:4001/graphql").read_text()

    assert '@join__graph(name: "sessiongraph", url: "http://127.0.0.1:4001/graphql")' in supergraph
    for type_name, key in [
        ("Meeting", "meetingKey"),
        ("F1Session", "sessionKey"),
        ("Guide", "guidebookId"),
        ("ScheduleTrack", "guidebookId"),
        ("Location", "guidebookId"),
        ("GuidebookSession", "guidebookId"),
        ("Connection", "name"),
        ("SqlRaceSession", "connectionName key"),
    ]:
        assert f"type {type_name} implements" in supergraph
        assert f'@join__type(graph: SESSIONGRAPH, key: "{key}")' in supergraph
    assert "_entities" not in supergraph  # the gateway's own business, not the API's


def test_hive_gateway_answers_through_sessiongraph(hive_gateway: str) -> None:
    query = "{ meeting(key: 1216) { meetingName sessions { sessionName } } }"
    response = httpx.post(hive_gateway + "/graphql", json={"query": query}, timeout=30)

    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    meeting = body["data"]["meeting"]
    assert meeting["meetingName"] == "Belgian Grand Prix"
    assert "Race" in [s["sessionName"] for s in meeting["sessions"]]


def test_hive_gateway_passes_node_lookups(hive_gateway: str) -> None:
    query = '{ node(id: "TWVldGluZzoxMjE2") { __typename id ... on Meeting { meetingKey } } }'
    response = httpx.post(hive_gateway + "/graphql", json={"query": query}, timeout=30)

    assert response.json()["data"]["node"] == {
        "__typename": "Meeting",
        "id": "TWVldGluZzoxMjE2",
        "meetingKey": 1216,
    }
