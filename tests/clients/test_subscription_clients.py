"""Subscriptions through real clients (graphql-ws, graphql-sse, Apollo Client's multipart
transport, pinned from npm) and the legacy `graphql-ws` protocol, against a gateway following
the OpenF1 emulator's live replay of the Abu Dhabi 2025 race (session 9839) at 60x."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.sync.connection import Connection
from websockets.typing import Subprotocol

from tests._servers import Gateway, Sandbox, sandbox_settings

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")
PACKAGES = ("graphql", "graphql-ws", "graphql-sse", "ws", "@apollo/client")
REPLAY = {"session_key": 9839, "speed": 60, "from_seconds": 0}
# Events each client collects: small, race control has about one a second at 60x.
EVENTS = 5
MISSING_SESSION = 123456789
RACE_CONTROL = "subscription { raceControl(latest: true) { date message } }"
LAPS = (
    "subscription Laps($after: String) { f1Laps(latest: true, driverNumber: 1, after: $after) "
    "{ driverNumber lapNumber dateStart lapDuration } }"
)
# How long a socket may stay quiet before a test gives up on it.
RECEIVE_SECONDS = 20.0

Message = dict[str, Any]


@pytest.fixture(scope="module")
def live() -> Iterator[Gateway]:
    """Emulators of its own (the replay changes OpenF1's `latest` session), the replay running,
    and a gateway with live REST access polling fast."""
    sandbox = Sandbox()
    try:
        replay = sandbox.http.post(sandbox.root("openf1") + "/__sandbox/replay", json=REPLAY)
        replay.raise_for_status()
        settings = sandbox_settings(
            sandbox,
            openf1_username="sandbox",
            openf1_password="sandbox",
            live_poll_seconds=0.5,
            openf1_rate_per_minute=0,
        )
        gateway = Gateway(settings)
        try:
            yield gateway
        finally:
            gateway.close()
    finally:
        sandbox.close()


def ws_url(gateway: Gateway) -> str:
    return gateway.url.replace("http://", "ws://", 1) + "/graphql"


def open_socket(gateway: Gateway, *protocols: str) -> ClientConnection:
    """A WebSocket to `/graphql` offering `protocols` (none: no Sec-WebSocket-Protocol)."""
    offered = [Subprotocol(protocol) for protocol in protocols] or None
    return connect(ws_url(gateway), subprotocols=offered, open_timeout=10)


def run_node(script: str, *args: str, timeout: float = 60) -> Any:
    """Runs one of this folder's scripts; they print one JSON value. Skips without Node or the
    npm packages (`make clients-deps`)."""
    if NODE is None:
        pytest.skip("node is not installed (`make system-deps`)")
    missing = [name for name in PACKAGES if not (HERE / "node_modules" / name).is_dir()]
    if missing:
        pytest.skip(
            f"npm packages missing in {HERE}/node_modules: {', '.join(missing)} "
            "(`make clients-deps`)"
        )
    result = subprocess.run(  # noqa: S603 - our scripts, no shell
        [NODE, str(HERE / script), *args],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"node {script} failed:\n{result.stderr}"
    return json.loads(result.stdout)


def assert_in_order(dates: list[str | None]) -> None:
    """Dates never go back; events without one (lap 1 has no start time) come first, as they
    sort in their cursors."""
    undated = dates.count(None)
    assert all(date is None for date in dates[:undated]), dates
    instants = [datetime.fromisoformat(date) for date in dates[undated:] if date is not None]
    assert instants == sorted(instants), dates


def assert_events(found: dict[str, Any], count: int, date_field: str) -> list[str]:
    """`count` events without errors, dates never going back, each with its cursor; returns
    the cursors."""
    assert found["errors"] == [], found
    assert found["ended"] == "enough", found
    events = found["events"]
    assert len(events) == count, events
    assert_in_order([event["value"][date_field] for event in events])
    cursors = [event["cursor"] for event in events]
    assert all(isinstance(cursor, str) and cursor for cursor in cursors), events
    return cursors


def assert_not_found(found: dict[str, Any]) -> None:
    assert found["events"] == [], found
    [error] = found["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND", error
    assert str(MISSING_SESSION) in error["message"]


def gateway_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the gateway logged at ERROR (tracebacks included) during the test."""
    time.sleep(0.3)  # the server side of a close may log just after the client saw it
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info
    ]


# --- graphql-transport-ws: graphql-ws's client --------------------------------------------


def test_graphql_ws_client_follows_two_topics_on_one_socket(live: Gateway) -> None:
    """graphql-ws subscribes to race control and driver 1's laps at once on one socket: both
    deliver their events in date order with cursors, in text frames (graphql-ws reads no
    others); a session that does not exist ends with NOT_FOUND."""
    out = run_node("graphql_ws_subscribe.mjs", ws_url(live), str(EVENTS))
    subscriptions = out["subscriptions"]

    assert out["frames"]["binary"] == 0, out["frames"]
    race_control = assert_events(subscriptions["raceControl"], EVENTS, "date")
    assert len(set(race_control)) == EVENTS  # one row, one event
    assert_events(subscriptions["f1Laps"], EVENTS, "dateStart")
    laps = [event["value"] for event in subscriptions["f1Laps"]["events"]]
    assert {lap["driverNumber"] for lap in laps} == {1}
    assert_not_found(subscriptions["missing"])
    assert out["sockets"] == 1  # the three subscriptions shared the socket


# --- GraphQL over SSE: graphql-sse's client, and a reconnect with Last-Event-ID ------------


def test_graphql_sse_client_resumes_after_a_cursor_and_a_last_event_id(live: Gateway) -> None:
    out = run_node("graphql_sse_subscribe.mjs", live.url + "/graphql", str(EVENTS))

    cursors = assert_events(out["first"], EVENTS, "date")
    assert len(set(cursors)) == EVENTS
    assert out["resumeFrom"] == cursors[2]
    # `after: <3rd cursor>`, then the same stream reopened with `Last-Event-ID: <3rd cursor>`:
    # each resumes with the 4th event, so nothing is missed and nothing repeated.
    for name in ("after", "lastEventId"):
        resumed = assert_events(out[name], EVENTS - 3, "date")
        assert resumed == cursors[3:], (name, out[name])
        comparison = out["resumedAfter" if name == "after" else "resumedLastEventId"]
        assert comparison["matches"] is True, comparison
        assert comparison["repeated"] == [], comparison
        assert comparison["duplicates"] == [], comparison
    reconnected = out["lastEventId"]
    assert reconnected["status"] == 200, reconnected
    assert reconnected["contentType"].startswith("text/event-stream")
    # Each event's SSE id is its cursor: what an EventSource sends back when it reconnects.
    assert [event["id"] for event in reconnected["events"]] == cursors[3:]


# --- Multipart subscriptions: Apollo Client's HttpLink -------------------------------------


def test_apollo_client_subscribes_over_multipart_http(live: Gateway) -> None:
    out = run_node("apollo_multipart_subscription.mjs", live.url + "/graphql", "3")

    assert out["errors"] == [], out
    assert out["ended"] == "enough", out
    events = out["events"]
    assert len(events) == 3
    assert_in_order([event["value"]["date"] for event in events])
    assert all(event["value"]["message"] for event in events)
    cursors = [(event["extensions"] or {}).get("cursor") for event in events]
    assert all(isinstance(cursor, str) for cursor in cursors), events
    assert len(set(cursors)) == 3
    [request] = out["requests"]  # one HTTP request for the whole subscription, no WebSocket
    assert request["method"] == "POST"
    accept = request["headers"]["accept"]
    assert accept.startswith("multipart/mixed"), accept
    assert "subscriptionSpec=1.0" in accept, accept
    assert request["status"] == 200
    assert request["responseHeaders"]["content-type"].startswith("multipart/mixed")


# --- The legacy graphql-ws protocol (subscriptions-transport-ws), from Python --------------


def receive(socket: Connection, timeout: float = RECEIVE_SECONDS) -> Message:
    message: Message = json.loads(socket.recv(timeout=timeout))
    return message


def receive_until(socket: Connection, wanted: str, operation: str | None) -> Message:
    """The next message of type `wanted` (for `operation`, when given); keep-alives between."""
    while True:
        message = receive(socket)
        if message["type"] == wanted and (operation is None or message.get("id") == operation):
            return message


def closed_with(socket: Connection) -> int | None:
    """Reads until the server closes; the close code it sent (None: no close frame)."""
    try:
        while True:
            socket.recv(timeout=5)
    except TimeoutError:
        raise AssertionError("the server kept the socket open") from None
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


def test_legacy_graphql_ws_protocol_sends_data_and_keep_alives(live: Gateway) -> None:
    with open_socket(live, "graphql-ws") as socket:
        assert socket.subprotocol == "graphql-ws"
        socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert receive(socket) == {"type": "connection_ack"}
        assert receive(socket) == {"type": "ka"}  # at once, then every KEEP_ALIVE_SECONDS

        socket.send(json.dumps({"id": "1", "type": "start", "payload": {"query": RACE_CONTROL}}))
        missing = f"subscription {{ raceControl(sessionKey: {MISSING_SESSION}) {{ date }} }}"
        socket.send(json.dumps({"id": "2", "type": "start", "payload": {"query": missing}}))
        not_found = receive_until(socket, "data", "2")
        [error] = not_found["payload"]["errors"]
        assert error["extensions"]["code"] == "NOT_FOUND", not_found
        receive_until(socket, "complete", "2")

        data = [receive_until(socket, "data", "1")["payload"] for _ in range(2)]
        for payload in data:
            assert "errors" not in payload, payload
            assert payload["data"]["raceControl"]["message"]
            assert isinstance(payload["extensions"]["cursor"], str)
        assert_in_order([payload["data"]["raceControl"]["date"] for payload in data])
        # Its events came through a group (one run per event for every WebSocket subscriber).
        assert live.app.state.live.groups.members == 1

        socket.send(json.dumps({"id": "1", "type": "stop"}))
        receive_until(socket, "complete", "1")
        socket.send(json.dumps({"type": "connection_terminate"}))
        assert closed_with(socket) == 1000


# --- Handshakes and frames the server must refuse cleanly ----------------------------------


@pytest.mark.parametrize("protocols", [("graphql-subscriptions",), ()], ids=["unknown", "none"])
def test_unknown_subprotocol_is_closed_4406(
    live: Gateway, protocols: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    with open_socket(live, *protocols) as socket:
        assert closed_with(socket) == 4406

    assert gateway_errors(caplog) == []


GARBAGE = [
    pytest.param("not json{", id="not-json"),
    pytest.param(b"\x00\xff", id="binary"),
    pytest.param("{}", id="no-type"),
    pytest.param('{"type": "bogus"}', id="unknown-type"),
    pytest.param("42", id="json-number"),
    pytest.param("[]", id="json-array"),
    pytest.param('[{"type": "connection_init"}]', id="json-batch"),
    pytest.param(
        '{"id": 1, "type": "subscribe", "payload": {"query": "{ __typename }"}}', id="id-not-string"
    ),
    pytest.param('{"id": "1", "type": "subscribe", "payload": "x"}', id="payload-not-object"),
    pytest.param(
        '{"id": "1", "type": "subscribe", "payload": {"query": 5}}', id="query-not-string"
    ),
    pytest.param(
        '{"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }", "variables": []}}',
        id="variables-not-object",
    ),
]


@pytest.mark.parametrize("frame", GARBAGE)
def test_garbage_on_graphql_transport_ws_is_closed_4400(
    live: Gateway, frame: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with open_socket(live, "graphql-transport-ws") as socket:
        socket.send(json.dumps({"type": "connection_init"}))
        assert receive(socket) == {"type": "connection_ack"}
        socket.send(frame)
        code = closed_with(socket)

    assert code == 4400
    assert gateway_errors(caplog) == []


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_websocket_messages_are_text_frames(live: Gateway, protocol: str) -> None:
    with open_socket(live, protocol) as socket:
        socket.send(json.dumps({"type": "connection_init"}))
        ack = socket.recv(timeout=RECEIVE_SECONDS)

    assert isinstance(ack, str), f"a {type(ack).__name__} frame: {ack!r}"
    assert json.loads(ack) == {"type": "connection_ack"}


# --- Resuming where a row changed after the cursor -----------------------------------------


def test_laps_resumed_after_a_lap_start_still_get_its_completion(live: Gateway) -> None:
    """On one socket: follow driver 1's laps; once lap L has started (cursor C) and then been
    completed, a second subscription `after: C` gets lap L's completion among its first events
    and never lap L's start again."""
    with open_socket(live, "graphql-transport-ws") as socket:
        socket.send(json.dumps({"type": "connection_init"}))
        assert receive(socket) == {"type": "connection_ack"}
        socket.send(json.dumps({"id": "follow", "type": "subscribe", "payload": {"query": LAPS}}))
        start: tuple[int, str] | None = None
        while True:
            payload = receive_until(socket, "next", "follow")["payload"]
            lap = payload["data"]["f1Laps"]
            if start is None and lap["dateStart"] and lap["lapDuration"] is None:
                start = lap["lapNumber"], payload["extensions"]["cursor"]
            elif start is not None and lap["lapNumber"] == start[0] and lap["lapDuration"]:
                completed = payload["extensions"]["cursor"]
                break
        assert start is not None
        lap_number, cursor = start
        resume = {"query": LAPS, "variables": {"after": cursor}}
        socket.send(json.dumps({"id": "resume", "type": "subscribe", "payload": resume}))
        # The next lap may start a moment before this one's recorded end (OpenF1's timings
        # overlap by a fraction of a second): the completion comes within the first few.
        resumed = []
        for _ in range(3):
            payload = receive_until(socket, "next", "resume")["payload"]
            resumed.append((payload["data"]["f1Laps"], payload["extensions"]["cursor"]))
            lap = payload["data"]["f1Laps"]
            if lap["lapNumber"] == lap_number and lap["lapDuration"] is not None:
                break

    assert cursor not in [c for _, c in resumed], "the lap start it resumed after came again"
    assert resumed[-1][1] == completed, (
        f"resumed after lap {lap_number}'s start (cursor {cursor}; its completion has cursor "
        f"{completed}) with {resumed}"
    )


# --- Subscriptions over plain HTTP ---------------------------------------------------------


@pytest.mark.parametrize("accept", ["application/json", 'multipart/mixed; boundary="-"'])
def test_subscription_over_plain_post_is_a_coded_client_error(
    live: Gateway, accept: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a stream it accepts, a subscription is refused (406), saying what would work."""
    response = live.post({"query": RACE_CONTROL}, Accept=accept)

    assert response.status_code == 406, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST", error
    assert "text/event-stream" in error["message"]
    assert gateway_errors(caplog) == []


def test_a_ping_with_extra_keys_gets_its_pong(live: Gateway) -> None:
    """Unknown keys are no reason to close: the protocol's messages may grow."""
    with open_socket(live, "graphql-transport-ws") as socket:
        socket.send(json.dumps({"type": "connection_init"}))
        assert receive(socket) == {"type": "connection_ack"}
        socket.send(json.dumps({"type": "ping", "query": 5}))
        assert receive(socket) == {"type": "pong"}
