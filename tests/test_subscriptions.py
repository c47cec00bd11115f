"""Subscriptions over each transport against the emulators' live replay: order, cursors,
resumption, one feed per topic, limits, bad input and upstream loss."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from sessiongraph.app import _EncodedEvents
from tests._servers import MUTATION_TOKEN, Gateway, Sandbox

RACE = 9839
RACE_CONTROL = (
    "subscription($after: String) { raceControl(latest: true, after: $after) { date message } }"
)
LAPS_OF_1 = "subscription { f1Laps(latest: true, driverNumber: 1) { driverNumber lapNumber } }"
LIVE = {
    "openf1_username": "sandbox",
    "openf1_password": "sandbox",
    "live_poll_seconds": 0.3,
    "openf1_rate_per_minute": 0,
}


def replay(sandbox: Sandbox, speed: float = 60, from_seconds: float = 0) -> None:
    body = {"session_key": RACE, "speed": speed, "from_seconds": from_seconds}
    httpx.post(sandbox.root("openf1") + "/__sandbox/replay", json=body).raise_for_status()


@pytest.fixture
def live(make_gateway: Callable[..., Gateway], sandbox: Sandbox) -> Gateway:
    replay(sandbox)
    return make_gateway(**LIVE)


@pytest.fixture
def roomy(make_gateway: Callable[..., Gateway], sandbox: Sandbox) -> Gateway:
    """`live` with room for 50 subscriptions on one socket."""
    replay(sandbox)
    return make_gateway(**LIVE, max_subscriptions_per_connection=50)


class Socket:
    """A graphql-transport-ws client, frame by frame."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, seconds: float = 20) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(
                await asyncio.wait_for(self.connection.recv(), seconds)
            )
            if message["type"] not in ("ping", "pong", "ka"):
                return message

    async def subscribe(self, id_: str, query: str, **variables: Any) -> None:
        payload = {"query": query, "variables": variables}
        await self.send({"id": id_, "type": "subscribe", "payload": payload})

    async def nexts(self, id_: str, count: int) -> list[dict[str, Any]]:
        found = []
        while len(found) < count:
            message = await self.receive()
            assert message["type"] in ("next", "error", "complete"), message
            if message.get("id") != id_:
                continue
            assert message["type"] == "next", message
            found.append(message["payload"])
        return found


@asynccontextmanager
async def socket(
    gateway: Gateway, payload: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[Socket]:
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    # Unbounded: with websockets' queue full the client stops reading, and closing a socket
    # whose other subscriptions' events went unread would wait 10 s for the close frame.
    options.setdefault("max_queue", None)
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], **options) as ws:
        client = Socket(ws)
        await client.send({"type": "connection_init", "payload": payload or {}})
        assert (await client.receive())["type"] == "connection_ack"
        yield client


def dates(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["data"]["raceControl"]["date"] for p in payloads]


# --- graphql-transport-ws ------------------------------------------------------------------------


async def test_race_control_arrives_in_order_with_cursors(live: Gateway) -> None:
    async with socket(live) as client:
        await client.subscribe("rc", RACE_CONTROL)
        await client.subscribe("laps", LAPS_OF_1)
        events = await client.nexts("rc", 4)
        laps = await client.nexts("laps", 2)
    assert dates(events) == sorted(dates(events))
    assert all(isinstance(e["extensions"]["cursor"], str) for e in events)
    assert {lap["data"]["f1Laps"]["driverNumber"] for lap in laps} == {1}


async def test_resuming_after_a_cursor_misses_nothing_and_repeats_nothing(live: Gateway) -> None:
    async with socket(live) as client:
        await client.subscribe("first", RACE_CONTROL)
        first = await client.nexts("first", 5)
    async with socket(live) as client:
        await client.subscribe("again", RACE_CONTROL, after=first[1]["extensions"]["cursor"])
        again = await client.nexts("again", 3)
    assert dates(again) == dates(first)[2:5]


async def test_n_subscribers_share_one_feed_that_stops_after_the_last(
    roomy: Gateway, sandbox: Sandbox
) -> None:
    live = roomy
    hub = live.app.state.live.hub
    async with socket(live) as client:
        for n in range(50):
            await client.subscribe(f"s{n}", RACE_CONTROL)
        seen: dict[str, int] = {}
        while len(seen) < 50:
            message = await client.receive()
            assert message["type"] == "next", message
            seen[message["id"]] = seen.get(message["id"], 0) + 1
        assert list(hub.feeds) == [("openf1", "race_control", RACE)]
        assert live.app.state.live.openf1.polling <= 1
    for _ in range(50):
        if not hub.feeds:
            break
        await asyncio.sleep(0.1)
    assert hub.feeds == {}
    assert live.app.state.live.openf1.polling == 0
    before = sandbox.stats("openf1")["by_path"]
    await asyncio.sleep(1)
    after = sandbox.stats("openf1")["by_path"]
    assert after.get("/v1/race_control") == before.get("/v1/race_control"), (before, after)


async def test_websocket_subscribers_of_one_document_are_served_as_one_group(
    roomy: Gateway,
) -> None:
    live = roomy
    groups = live.app.state.live.groups
    async with socket(live) as one, socket(live) as two:
        for n in range(3):
            await one.subscribe(f"a{n}", RACE_CONTROL)
            await two.subscribe(f"b{n}", RACE_CONTROL)
        got: dict[str, list[bytes]] = {}
        for client, ids in ((one, {"a0", "a1", "a2"}), (two, {"b0", "b1", "b2"})):
            while any(len(got.get(id_, [])) < 4 for id_ in ids):
                message = await client.receive()
                assert message["type"] == "next", message
                got.setdefault(message["id"], []).append(orjson.dumps(message["payload"]))
        assert groups.members == 6
        # One run for all: the very same payloads (cursors included) under each id (one
        # subscription may have started an event or two later than another).
        assert all(got["a0"][3] in payloads for payloads in got.values())
        await one.send({"id": "a1", "type": "complete"})
        await two.nexts("b0", 3)
        assert groups.members == 5
        nexts = []
        while len(nexts) < 6:
            message = await one.receive()
            assert message["type"] == "next", message
            nexts.append(message["id"])
        assert "a1" not in nexts
    for _ in range(50):
        if not live.app.state.live.hub.feeds:
            break
        await asyncio.sleep(0.1)
    assert groups.members == 0
    assert live.app.state.live.hub.feeds == {}


async def test_any_json_in_a_grouped_subscriptions_variables_is_fine(live: Gateway) -> None:
    async with socket(live) as client:
        # Not declared by the operation, so never validated: still part of its group's key.
        await client.subscribe("big", RACE_CONTROL, unused=10**30, nested={"b": [1.5, None]})
        events = await client.nexts("big", 2)
        assert all(event["data"]["raceControl"] for event in events)
        assert live.app.state.live.groups.members == 1


async def test_a_session_that_does_not_exist_is_a_coded_error(live: Gateway) -> None:
    async with socket(live) as client:
        await client.subscribe("x", "subscription { raceControl(sessionKey: 123456789) { date } }")
        message = await client.receive()
    assert message["type"] in ("error", "next")
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_finished_session_gives_its_backlog_then_completes(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(**LIVE)  # no replay: 9839's results are out, it is over
    async with socket(gateway) as client:
        await client.subscribe(
            "done", f"subscription {{ raceControl(sessionKey: {RACE}) {{ date }} }}"
        )
        count = 0
        while True:
            message = await client.receive()
            if message["type"] == "complete":
                break
            assert message["type"] == "next", message
            count += 1
    assert count > 50


async def test_session_status_goes_from_started_to_finished(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox
) -> None:
    # Near the race's end at high speed: the results come out within seconds.
    replay(sandbox, speed=600, from_seconds=5500)
    gateway = make_gateway(**LIVE)
    query = "subscription { f1SessionStatus(latest: true) { status sessionKey } }"
    async with socket(gateway) as client:
        await client.subscribe("status", query)
        statuses = []
        while True:
            message = await client.receive(seconds=60)
            if message["type"] == "complete":
                break
            statuses.append(message["payload"]["data"]["f1SessionStatus"]["status"])
    assert statuses == ["STARTED", "FINISHED"]


async def test_per_connection_limit_is_coded_and_the_connection_survives(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox
) -> None:
    replay(sandbox)
    gateway = make_gateway(**LIVE, max_subscriptions_per_connection=3)
    async with socket(gateway) as client:
        for n in range(3):
            await client.subscribe(f"ok{n}", RACE_CONTROL)
        await client.subscribe("over", RACE_CONTROL)
        while True:
            message = await client.receive()
            if message.get("id") == "over":
                break
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "SUBSCRIPTION_LIMIT"
        assert errors[0]["extensions"]["reason"] == "PER_CONNECTION"
        assert (await client.nexts("ok0", 1))[0]["data"]["raceControl"]


async def test_ten_thousand_subscriptions_on_one_connection(live: Gateway) -> None:
    async with socket(live) as client:
        for n in range(10_000):
            await client.send(
                {"id": str(n), "type": "subscribe", "payload": {"query": RACE_CONTROL}}
            )
        refused = 0
        while refused < 10_000 - 20:
            message = await client.receive()
            if message["type"] in ("error", "next") and message["payload"].get("errors", True):
                payload = message["payload"]
                errors = payload if message["type"] == "error" else payload.get("errors")
                if errors and errors[0]["extensions"]["code"] == "SUBSCRIPTION_LIMIT":
                    refused += 1
        await client.send({"type": "ping"})
    assert live.app.state.live.hub.subscribers <= 20


async def test_the_process_limit_refuses_new_connections(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox
) -> None:
    replay(sandbox)
    gateway = make_gateway(**LIVE, max_live_connections=1)
    async with socket(gateway) as client:
        url = gateway.url.replace("http://", "ws://") + "/graphql"
        with pytest.raises(websockets.exceptions.WebSocketException):
            await refused_handshake(url)
        await client.subscribe("still", RACE_CONTROL)
        assert await client.nexts("still", 1)


async def refused_handshake(url: str) -> None:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as second:
        await second.send(json.dumps({"type": "connection_init"}))
        await second.recv()


async def post(url: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(url, json=body)).raise_for_status()


async def test_garbage_frames_and_unknown_subprotocols_close_cleanly(
    live: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    url = live.url.replace("http://", "ws://") + "/graphql"
    for frame in ("not json", '{"type": "no-such-type"}', "[1, 2]", '{"id": 1}'):
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            await ws.recv()
            await ws.send(frame)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4400
    async with websockets.connect(url, subprotocols=["graphql-nonsense"]) as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert "Traceback" not in caplog.text


async def test_websocket_origin_is_checked_against_cors_origins(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(**LIVE, cors_origins=["https://app.example"])
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(
            url, subprotocols=["graphql-transport-ws"], origin="https://evil.example"
        ):
            pass
    assert refused.value.response.status_code == 403
    async with websockets.connect(
        url, subprotocols=["graphql-transport-ws"], origin="https://app.example"
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_a_required_token_travels_in_connection_init(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox
) -> None:
    replay(sandbox)
    gateway = make_gateway(**LIVE, require_token_for_queries=True)
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403
    bearer = {"Authorization": f"Bearer {MUTATION_TOKEN}"}
    async with socket(gateway, bearer) as client:
        await client.subscribe("rc", RACE_CONTROL)
        assert await client.nexts("rc", 1)


async def test_without_an_account_the_live_window_is_a_coded_error(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox
) -> None:
    replay(sandbox)
    gateway = make_gateway(live_poll_seconds=0.3, openf1_rate_per_minute=0)
    async with socket(gateway) as client:
        await client.subscribe(
            "rc", f"subscription {{ raceControl(sessionKey: {RACE}) {{ date }} }}"
        )
        message = await client.receive()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "UPSTREAM_AUTH_FAILED"


async def test_upstream_failing_midway_ends_with_a_coded_error(
    live: Gateway, sandbox: Sandbox
) -> None:
    async with socket(live) as client:
        await client.subscribe("rc", RACE_CONTROL)
        await client.nexts("rc", 1)
        # Both sources gone: the broker down for an update, and REST answering 503.
        broker = sandbox.root("openf1") + "/__sandbox/replay/broker"
        await post(broker, {"running": False})
        sandbox.faults("openf1", error_rate=1.0, error_status=503)
        while True:
            message = await client.receive(seconds=60)
            if message.get("id") == "rc" and message["type"] != "next":
                break
            if message["type"] == "next" and message["payload"].get("errors"):
                break
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"


# --- SSE and multipart -----------------------------------------------------------------------


def sse_events(response: httpx.Response, count: int) -> list[tuple[str | None, dict[str, Any]]]:
    found: list[tuple[str | None, dict[str, Any]]] = []
    event_id, kind = None, None
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "next":
            found.append((event_id, json.loads(line[6:])))
            event_id = kind = None
            if len(found) == count:
                break
    return found


def test_sse_events_carry_ids_and_last_event_id_resumes(live: Gateway) -> None:
    headers = {"Accept": "text/event-stream"}
    body = {"query": RACE_CONTROL}
    with (
        httpx.Client(base_url=live.url, timeout=30) as http,
        http.stream("POST", "/graphql", json=body, headers=headers) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        first = sse_events(response, 5)
    assert all(event_id == e["extensions"]["cursor"] for event_id, e in first)
    resume = {**headers, "Last-Event-ID": str(first[1][0])}
    with (
        httpx.Client(base_url=live.url, timeout=30) as http,
        http.stream("POST", "/graphql", json=body, headers=resume) as response,
    ):
        again = sse_events(response, 3)
    assert [e["data"] for _, e in again] == [e["data"] for _, e in first[2:5]]


def test_multipart_subscriptions(live: Gateway) -> None:
    headers = {"Accept": "multipart/mixed;subscriptionSpec=1.0, application/json"}
    with (
        httpx.Client(base_url=live.url, timeout=30) as http,
        http.stream("POST", "/graphql", json={"query": RACE_CONTROL}, headers=headers) as response,
    ):
        assert response.headers["content-type"].startswith("multipart/mixed")
        payloads: list[dict[str, Any]] = []
        for line in response.iter_lines():
            if line.startswith("{") and '"payload"' in line:
                payloads.append(json.loads(line)["payload"])
                if len(payloads) == 2:
                    break
    assert all(p["data"]["raceControl"]["date"] for p in payloads)


# --- Guidebook and SQL Race ------------------------------------------------------------------


async def test_guidebook_changes_from_mutations_and_webhooks(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox
) -> None:
    token = "live-test-webhook-token"
    gateway = make_gateway(guidebook_webhook_token=token, cache_url="memory://")
    config = sandbox.root("guidebook") + "/__sandbox/config"
    hook = {"webhook_url": gateway.url + "/webhooks/guidebook", "webhook_token": token}
    await post(config, hook)
    query = (
        "subscription { guidebookSessionChanges(guideId: 58214) "
        "{ kind guidebookId session { name } } }"
    )
    async with socket(gateway) as client:
        await client.subscribe("gb", query)
        await asyncio.sleep(0.5)  # the feed reads the guide's sessions first
        created = gateway.query(
            'mutation { createSession(input: {guideId: 58214, name: "Live Created", '
            'startTime: "2026-05-01T10:00:00Z", endTime: "2026-05-01T11:00:00Z"}) '
            "{ session { guidebookId } userErrors { message } } }",
            Authorization=f"Bearer {MUTATION_TOKEN}",
        )
        new_id = created["data"]["createSession"]["session"]["guidebookId"]
        (change,) = await client.nexts("gb", 1)
        assert change["data"]["guidebookSessionChanges"] == {
            "kind": "CREATED",
            "guidebookId": new_id,
            "session": {"name": "Live Created"},
        }
        edit = {"action": "update_session", "id": 4120337, "fields": {"name": "Edited In Builder"}}
        builder = sandbox.root("guidebook") + "/__sandbox/guidebook/builder"
        await post(builder, edit)
        (change,) = await client.nexts("gb", 1)
        assert change["data"]["guidebookSessionChanges"]["kind"] == "UPDATED"
        assert change["data"]["guidebookSessionChanges"]["session"] == {"name": "Edited In Builder"}


async def test_sqlrace_live_sessions_appear_and_grow(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox
) -> None:
    gateway = make_gateway(live_poll_seconds=0.3)
    record = sandbox.root("sqlrace") + "/__sandbox/sqlrace/record"
    connection = gateway.query("{ connections { name } }")["data"]["connections"][0]["name"]
    query = (
        "subscription($c: String!) { sqlRaceLiveSessions(connection: $c) "
        "{ kind lapCount session { key state } } }"
    )
    async with socket(gateway) as client:
        await client.subscribe("live", query, c=connection)
        await asyncio.sleep(0.5)
        body = {"connection": connection, "speed": 100, "laps": 2, "lap_seconds": 60}
        await post(record, body)
        kinds: list[str] = []
        laps: list[int] = []
        while "ENDED" not in kinds and len(kinds) < 30:
            (change,) = await client.nexts("live", 1)
            value = change["data"]["sqlRaceLiveSessions"]
            kinds.append(value["kind"])
            laps.append(value["lapCount"])
    assert kinds[0] == "APPEARED"
    assert "UPDATED" in kinds
    assert laps == sorted(laps)


def test_an_event_shared_by_subscribers_is_encoded_once_and_sent_exactly() -> None:
    encoded = _EncodedEvents(size=2)
    data = {"f1Laps": {"lapNumber": 3, "driverNumber": 1}}
    messages: list[dict[str, Any]] = [
        {"id": "7", "type": "next", "payload": {"data": data, "extensions": {"cursor": "c1"}}},
        {"id": "8", "type": "next", "payload": {"data": data, "extensions": {"cursor": "c1"}}},
        {"id": "9", "type": "next", "payload": {"data": data, "extensions": {"cursor": "c2"}}},
        {"id": "1", "type": "next", "payload": {"data": None, "errors": [{"message": "no"}]}},
        {"id": "2", "type": "data", "payload": {"data": data}},
        {"type": "ping", "payload": {"data": data}},
    ]
    for message in messages:
        assert orjson.loads(encoded.message(message)) == message
    # Another event with equal data (a new object) is encoded on its own.
    other = {"id": "7", "type": "next", "payload": {"data": {"f1Laps": None}}}
    assert orjson.loads(encoded.message(other)) == other
