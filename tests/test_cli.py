"""The command line: the checked-in SDL matches `sessiongraph schema`; bad flags fail cleanly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sessiongraph.auth import token_hash
from sessiongraph.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("flags", "file"), [([], "schema.graphql"), (["--federation"], "subgraph.graphql")]
)
def test_checked_in_schemas_are_current(
    capsys: pytest.CaptureFixture[str], flags: list[str], file: str
) -> None:
    main(["schema", *flags])
    printed = capsys.readouterr().out
    assert printed == (ROOT / file).read_text(), (
        f"{file} is stale: run `sessiongraph schema {' '.join(flags)} > {file}`"
    )


def test_the_client_schema_is_plain_graphql() -> None:
    from graphql import build_schema

    text = (ROOT / "schema.graphql").read_text()
    schema = build_schema(text)  # graphql-core refuses unknown directives such as @key
    assert "_Any" not in schema.type_map
    assert "_entities" not in schema.query_type.fields  # type: ignore[union-attr]
    assert "@link" not in text
    date_time = schema.type_map["DateTime"]
    assert "rfc3339" in (date_time.specified_by_url or "")  # type: ignore[attr-defined]
    federated = (ROOT / "subgraph.graphql").read_text()
    assert "@link(" in federated
    assert "@key(" in federated


def test_console_script_prints_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sessiongraph", "schema"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "type Query" in result.stdout
    assert "interface Session" in result.stdout


def test_unknown_command_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])
    assert exit_info.value.code == 2
    assert "usage" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`sessiongraph serve` as users run it (no upstreams configured), stopped after."""
    port = free_port()
    env = {
        **os.environ,
        "SESSIONGRAPH_HEADER_READ_TIMEOUT_SECONDS": "1",
        "SESSIONGRAPH_LOG_FORMAT": "text",
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "sessiongraph", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield port, process
    process.terminate()
    process.wait(15)


def test_no_access_log_and_no_query_strings_in_the_log(
    served: tuple[int, subprocess.Popen[str]],
) -> None:
    port, process = served
    secret = "sg-secret-token-123"
    for path in (f"/graphql?query={{__typename}}&token={secret}", f"/healthz?apikey={secret}"):
        httpx.get(f"http://127.0.0.1:{port}{path}", headers={"x-apollo-operation-name": "a"})
    process.terminate()
    output, _ = process.communicate(timeout=15)
    assert secret not in output
    assert '"GET /' not in output  # uvicorn's access-log line


def test_headers_that_never_end_are_cut_off() -> None:
    port = free_port()
    env = {**os.environ, "SESSIONGRAPH_HEADER_READ_TIMEOUT_SECONDS": "1"}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "sessiongraph", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: never ends
        started = time.monotonic()
        assert idle.recv(100) == b""  # closed by the server, which sent nothing
        assert slow.recv(100) == b""
        assert time.monotonic() - started < 5
        idle.close()
        slow.close()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(15)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SESSIONGRAPH_PERSISTED_DOCUMENTS_FILE": "/no/such/documents.json"}, "cannot read"),
        ({"SESSIONGRAPH_PERSISTED_DOCUMENTS_ONLY": "true"}, "PERSISTED_DOCUMENTS_FILE"),
        ({"SESSIONGRAPH_MAX_QUERY_DEPTH": "deep"}, "SESSIONGRAPH_MAX_QUERY_DEPTH"),
    ],
)
def test_bad_configuration_stops_serve_with_a_message(env: dict[str, str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sessiongraph", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_sandbox_keeps_the_users_token_and_replays() -> None:
    """`serve --sandbox --replay 9839@60` with API_TOKEN_HASHES set: that token runs
    mutations (none is generated or printed), and OpenF1's `latest` is the replayed race."""
    port = free_port()
    token = "ci-known-token"
    env = {
        **os.environ,
        "SESSIONGRAPH_API_TOKEN_HASHES": token_hash(token),
        "SESSIONGRAPH_LOG_FORMAT": "text",
    }
    command = ["serve", "--sandbox", "--port", str(port), "--replay", "9839@60"]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "sessiongraph", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        mutation = (
            'mutation { createScheduleTrack(input: {guideId: 58214, name: "CI"}) '
            "{ scheduleTrack { name } userErrors { message } } }"
        )
        done = httpx.post(
            url + "/graphql",
            json={"query": mutation},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        assert done["data"]["createScheduleTrack"]["scheduleTrack"]["name"] == "CI", done
        latest = httpx.post(
            url + "/graphql",
            json={"query": "{ f1Session(latest: true) { sessionKey } }"},
            timeout=30,
        ).json()
        assert latest["data"]["f1Session"]["sessionKey"] == 9839, latest
        # An edit in Builder reaches the gateway as a webhook: the next read shows it, well
        # within the cache's TTL.
        session = "{ guidebookSession(id: 4120337) { name } }"
        before = httpx.post(url + "/graphql", json={"query": session}, timeout=30).json()
        assert before["data"]["guidebookSession"]["name"] == "Registration & Breakfast", before
        base = httpx.get(url + "/readyz", timeout=10).json()["sandbox"]["guidebook"]
        root = base.removesuffix("/open-api/v1")
        edit = {"action": "update_session", "id": 4120337, "fields": {"name": "Doors Open"}}
        httpx.post(root + "/__sandbox/guidebook/builder", json=edit).raise_for_status()
        deliveries = httpx.get(root + "/__sandbox/guidebook/webhooks?wait=10", timeout=15).json()
        (delivered,) = [d for d in deliveries["deliveries"] if d["event"].endswith("Updated")]
        assert delivered["status"] == 200, deliveries
        after = httpx.post(url + "/graphql", json={"query": session}, timeout=30).json()
        assert after["data"]["guidebookSession"]["name"] == "Doors Open", after
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert "mutation token (Authorization" not in output
    assert "API_TOKEN_HASHES" in output
