"""The Guidebook emulator's webhooks and Builder simulation, delivered to a real receiver."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sessiongraph.sandbox.guidebook import (
    SANDBOX_API_KEY,
    SANDBOX_SECOND_ACCOUNT_ID,
    SANDBOX_SECOND_API_KEY,
    SANDBOX_WEBHOOK_TOKEN,
    create_app,
)
from tests._servers import LoopThread, Sandbox

CDC, MDS, RMF = 58214, 58377, 58296
FIRST_SESSION, NEXT_SESSION_ID = 4120337, 4120423
WEB = 301102
AUTH = {"Authorization": f"JWT {SANDBOX_API_KEY}"}
TOKEN = "receiver-token-1"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$")
CDC_ADMIN = {
    "user_id": "5120044",
    "first_name": "Dana",
    "last_name": "Whitfield",
    "company": "Cascadia Events Collective",
    "position": "Program Manager",
    "email": "dana.whitfield@cascadia-events.example",
}


@dataclass
class Receiver:
    """A webhook endpoint on a free loopback port, recording what it was sent."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delays: list[float] = field(default_factory=list)  # the next requests' answer delays

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(
            {
                "token": request.headers.get("GB_WEBHOOK_SECURITY_TOKEN"),
                "content_type": request.content_type,
                "body": await request.json(),
            }
        )
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        return web.json_response({"ok": True}, status=self.status)

    @property
    def events(self) -> list[str]:
        return [item["body"]["event"] for item in self.received]


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[Receiver]:
    thread = LoopThread("webhook-receiver")
    receiver = Receiver()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        return runner

    runner = thread.run(start)
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    yield receiver
    thread.run(runner.cleanup)
    thread.close()


@pytest.fixture
def receiver(receiver_server: Receiver, sandbox: Sandbox) -> Receiver:
    receiver_server.received.clear()
    receiver_server.status = 200
    receiver_server.delays.clear()
    return receiver_server


@pytest.fixture
def control(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.root("guidebook") + "/__sandbox", timeout=10) as client:
        yield client


@pytest.fixture
def gb(sandbox: Sandbox) -> Iterator[httpx.Client]:
    root = sandbox.root("guidebook") + "/open-api/v1.1"
    with httpx.Client(base_url=root, headers=AUTH, timeout=10) as client:
        yield client


def hook_to(control: httpx.Client, receiver: Receiver, **extra: Any) -> None:
    config = {"webhook_url": receiver.url, "webhook_token": TOKEN} | extra
    control.post("/config", json=config).raise_for_status()


def deliveries(control: httpx.Client) -> list[dict[str, Any]]:
    """The delivery log once every queued event has been attempted."""
    log = control.get("/guidebook/webhooks", params={"wait": 5}).json()
    assert log["pending"] == 0
    result: list[dict[str, Any]] = log["deliveries"]
    return result


def builder(control: httpx.Client, **body: Any) -> dict[str, Any]:
    response = control.post("/guidebook/builder", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# --- API writes --------------------------------------------------------------------------------


def test_session_writes_through_the_api_send_builder_events(
    control: httpx.Client, receiver: Receiver, gb: httpx.Client
) -> None:
    hook_to(control, receiver)
    body = {"guide": CDC, "name": "Hallway Track", "start_time": "2027-04-20T20:00:00Z"}
    created = gb.post("/sessions/", json=body).json()
    gb.patch(f"/sessions/{created['id']}/", json={"name": "Hallway Track (moved)"})
    gb.delete(f"/sessions/{created['id']}/")
    gb.post("/schedule-tracks/", json={"guide": CDC, "name": "No event for tracks"})
    gb.post("/sessions/", json={"guide": CDC})  # a 400 changes nothing and sends nothing
    log = deliveries(control)
    assert [entry["event"] for entry in log] == [
        "Builder-SessionCreated",
        "Builder-SessionUpdated",
        "Builder-SessionDeleted",
    ]
    assert [(e["state"], e["status"], e["error"]) for e in log] == [("delivered", 200, None)] * 3
    assert receiver.events == [entry["event"] for entry in log]
    assert {item["token"] for item in receiver.received} == {TOKEN}
    assert {item["content_type"] for item in receiver.received} == {"application/json"}
    first = receiver.received[0]["body"]
    assert set(first) == {"weid", "event", "properties", "extra_metadata"}
    assert first["extra_metadata"] is None
    properties = first["properties"]
    assert TIME.match(properties.pop("time"))
    assert properties == CDC_ADMIN | {
        "guide_id": str(CDC),
        "guide_name": "Cascadia Developer Conference 2027",
        "session_id": str(NEXT_SESSION_ID),
        "session_name": "Hallway Track",
        "open_api_version": "v1.1",
    }
    names = [item["body"]["properties"]["session_name"] for item in receiver.received]
    assert names == ["Hallway Track", "Hallway Track (moved)", "Hallway Track (moved)"]
    weids = [item["body"]["weid"] for item in receiver.received]
    assert len(set(weids)) == 3
    assert [entry["weid"] for entry in log] == weids
    assert all(weid.startswith("5120044-") for weid in weids)


def test_v1_writes_name_their_version(
    sandbox: Sandbox, control: httpx.Client, receiver: Receiver
) -> None:
    hook_to(control, receiver)
    url = sandbox.base_url("guidebook") + f"/sessions/{FIRST_SESSION}/"
    httpx.patch(url, json={"rank": 3}, headers=AUTH).raise_for_status()
    deliveries(control)
    assert receiver.received[0]["body"]["properties"]["open_api_version"] == "v1"


def test_api_publish_sends_guide_published(
    control: httpx.Client, receiver: Receiver, gb: httpx.Client
) -> None:
    hook_to(control, receiver)
    assert gb.post(f"/guides/{MDS}/publish/").status_code == 202
    (entry,) = deliveries(control)
    properties = entry["payload"]["properties"]
    assert entry["event"] == "Builder-GuidePublished"
    assert (properties["guide_id"], properties["open_api_version"]) == (str(MDS), "v1.1")
    assert "session_id" not in properties
    publishes = control.get("/guidebook/publishes").json()["publishes"]
    assert publishes[0]["weid"] == entry["weid"]


# --- delivery ------------------------------------------------------------------------------------


def test_a_slow_receiver_never_delays_the_api(
    control: httpx.Client, receiver: Receiver, gb: httpx.Client
) -> None:
    hook_to(control, receiver, webhook_timeout_seconds=0.3)
    receiver.delays = [1.0]  # the first delivery outlasts the timeout
    started = time.monotonic()
    gb.patch(f"/sessions/{FIRST_SESSION}/", json={"name": "One"}).raise_for_status()
    gb.patch(f"/sessions/{FIRST_SESSION}/", json={"name": "Two"}).raise_for_status()
    assert time.monotonic() - started < 0.3
    log = deliveries(control)
    assert [(e["state"], e["status"], e["error"]) for e in log] == [
        ("failed", None, "timeout after 0.3 s"),
        ("delivered", 200, None),
    ]
    # One attempt each, in the order they happened.
    names = [item["body"]["properties"]["session_name"] for item in receiver.received]
    assert names == ["One", "Two"]


def test_a_failing_receiver_is_not_retried(
    sandbox: Sandbox, control: httpx.Client, receiver: Receiver
) -> None:
    hook_to(control, receiver)
    receiver.status = 500
    builder(control, action="publish", guide=CDC)
    (entry,) = deliveries(control)
    assert (entry["state"], entry["status"]) == ("failed", 500)
    assert len(receiver.received) == 1
    # Nobody listening: the connection error is logged.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    control.post("/config", json={"webhook_url": closed}).raise_for_status()
    builder(control, action="publish", guide=CDC)
    entry = deliveries(control)[-1]
    assert (entry["state"], entry["url"], entry["status"]) == ("failed", closed, None)
    assert entry["error"].startswith("ClientConnectorError")


def test_redelivery_repeats_the_weid(control: httpx.Client, receiver: Receiver) -> None:
    assert control.post("/guidebook/webhooks/redeliver").status_code == 409  # no webhook
    hook_to(control, receiver)
    assert control.post("/guidebook/webhooks/redeliver").status_code == 404  # nothing sent
    builder(control, action="update_session", id=FIRST_SESSION, fields={"rank": 1})
    builder(control, action="publish", guide=CDC)
    again = control.post("/guidebook/webhooks/redeliver")
    assert again.status_code == 202
    assert again.json()["redelivery"] is True
    first = deliveries(control)[0]
    chosen = control.post("/guidebook/webhooks/redeliver", json={"weid": first["weid"]})
    assert chosen.status_code == 202
    assert control.post("/guidebook/webhooks/redeliver", json={"weid": "nope"}).status_code == 404
    log = deliveries(control)
    assert [(e["event"], e["redelivery"]) for e in log] == [
        ("Builder-SessionUpdated", False),
        ("Builder-GuidePublished", False),
        ("Builder-GuidePublished", True),
        ("Builder-SessionUpdated", True),
    ]
    bodies = [item["body"] for item in receiver.received]
    assert bodies[2] == bodies[1]  # a duplicate: the same weid, the same properties
    assert bodies[3] == bodies[0]


def test_event_and_account_filters(
    sandbox: Sandbox, control: httpx.Client, receiver: Receiver, gb: httpx.Client
) -> None:
    hook_to(control, receiver, webhook_events=["Builder-SessionDeleted"])
    gb.patch(f"/sessions/{FIRST_SESSION}/", json={"rank": 2})
    gb.delete(f"/sessions/{FIRST_SESSION}/")
    assert [e["event"] for e in deliveries(control)] == ["Builder-SessionDeleted"]
    hook_to(control, receiver, webhook_events=None, webhook_accounts=[SANDBOX_SECOND_ACCOUNT_ID])
    builder(control, action="publish", guide=CDC)
    second = httpx.Client(
        base_url=sandbox.root("guidebook") + "/open-api/v1.1",
        headers={"Authorization": f"JWT {SANDBOX_SECOND_API_KEY}"},
    )
    with second:
        second.patch("/sessions/4120348/", json={"name": "Opening Circle!"}).raise_for_status()
    log = deliveries(control)
    assert [e["event"] for e in log] == ["Builder-SessionDeleted", "Builder-SessionUpdated"]
    properties = log[-1]["payload"]["properties"]
    assert (properties["guide_id"], properties["guide_name"]) == (
        str(RMF),
        "Riverside Makers Fair 2027",
    )
    assert (properties["user_id"], properties["position"]) == ("5187310", None)


def test_no_webhook_no_deliveries_and_reset_clears_everything(
    sandbox: Sandbox, control: httpx.Client, receiver: Receiver
) -> None:
    assert builder(control, action="publish", guide=CDC)["publish"]["weid"] is None
    assert deliveries(control) == []
    hook_to(control, receiver)
    builder(control, action="publish", guide=CDC)
    assert len(deliveries(control)) == 1
    sandbox.reset("guidebook")
    log = control.get("/guidebook/webhooks").json()
    assert log == {
        "deliveries": [],
        "pending": 0,
        "webhook_url": None,
        "webhook_token": SANDBOX_WEBHOOK_TOKEN,
        "webhook_events": None,
        "webhook_accounts": None,
        "webhook_timeout_seconds": 2.0,
    }
    assert control.get("/guidebook/publishes").json() == {"publishes": []}
    assert control.get("/config").json()["webhook_url"] is None


# --- Builder -------------------------------------------------------------------------------------


def test_builder_session_edits(control: httpx.Client, receiver: Receiver, gb: httpx.Client) -> None:
    hook_to(control, receiver)
    updated = builder(
        control,
        action="update_session",
        id=FIRST_SESSION,
        fields={"name": "Badge pickup", "schedule_tracks": [WEB], "guide": MDS},
    )
    assert updated["session"]["name"] == "Badge pickup"
    session = gb.get(f"/sessions/{FIRST_SESSION}/").json()
    assert (session["name"], session["schedule_tracks"], session["guide"]) == (
        "Badge pickup",
        [WEB],
        CDC,
    )
    created = builder(
        control,
        action="create_session",
        guide=MDS,
        fields={"name": "Pit walk", "start_time": "2027-06-08T16:00:00+01:00"},
    )
    assert created["session"]["id"] == NEXT_SESSION_ID
    assert created["session"]["start_time"] == "2027-06-08T15:00:00.000000+0000"
    assert gb.get(f"/sessions/{NEXT_SESSION_ID}/").json()["guide"] == MDS
    deleted = builder(control, action="delete_session", id=NEXT_SESSION_ID)
    assert deleted["deleted"] == [NEXT_SESSION_ID]
    assert gb.get(f"/sessions/{NEXT_SESSION_ID}/").status_code == 404
    log = deliveries(control)
    assert [e["event"] for e in log] == [
        "Builder-SessionUpdated",
        "Builder-SessionCreated",
        "Builder-SessionDeleted",
    ]
    assert [e["weid"] for e in log] == [updated["weid"], created["weid"], deleted["weid"]]
    for entry, (session_id, name, guide) in zip(
        log,
        [
            (FIRST_SESSION, "Badge pickup", CDC),
            (NEXT_SESSION_ID, "Pit walk", MDS),
            (NEXT_SESSION_ID, "Pit walk", MDS),
        ],
        strict=True,
    ):
        properties = entry["payload"]["properties"]
        assert properties["open_api_version"] is None
        assert (properties["session_id"], properties["session_name"]) == (str(session_id), name)
        assert properties["guide_id"] == str(guide)


def test_builder_guide_wide_actions(
    control: httpx.Client, receiver: Receiver, gb: httpx.Client
) -> None:
    hook_to(control, receiver)
    gone = builder(control, action="delete_all_sessions", guide=MDS)
    assert len(gone["deleted"]) == 24
    assert gb.get("/sessions/", params={"guide": MDS}).json()["count"] == 0
    assert gb.get("/sessions/", params={"guide": CDC}).json()["count"] == 50
    imported = builder(
        control,
        action="csv_import",
        guide=CDC,
        sessions=[
            {"import_id": "cdc27-s001", "name": "Registration (imported)"},
            {"import_id": "csv-1", "name": "New from CSV", "start_time": "2027-04-22T17:00:00Z"},
        ],
    )
    assert imported["updated"] == [FIRST_SESSION]
    assert imported["created"] == [NEXT_SESSION_ID]
    assert gb.get(f"/sessions/{FIRST_SESSION}/").json()["name"] == "Registration (imported)"
    new = gb.get(f"/sessions/{NEXT_SESSION_ID}/").json()
    assert (new["guide"], new["import_id"]) == (CDC, "csv-1")
    published = builder(control, action="publish", guide=RMF)["publish"]
    assert (published["source"], published["account"]) == ("builder", SANDBOX_SECOND_ACCOUNT_ID)
    log = deliveries(control)
    assert [e["event"] for e in log] == [
        "Builder-AllSessionsInGuideDeleted",
        "Builder-ScheduleCSVImport",
        "Builder-GuidePublished",
    ]
    for entry in log:
        assert "session_id" not in entry["payload"]["properties"]
        assert entry["payload"]["properties"]["open_api_version"] is None
    assert log[0]["payload"]["properties"]["guide_id"] == str(MDS)
    publishes = control.get("/guidebook/publishes").json()["publishes"]
    assert [(p["guide"], p["source"], p["open_api_version"]) for p in publishes] == [
        (RMF, "builder", None)
    ]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"action": "rename_guide"}, 400, {"error": "unknown action 'rename_guide'; one of "}),
        ({"action": "update_session", "id": 1}, 404, {"error": "session 1 does not exist"}),
        ({"action": "publish", "guide": "58214"}, 404, {"error": "guide '58214' does not exist"}),
        (
            {"action": "update_session", "id": FIRST_SESSION, "fields": {"name": ""}},
            400,
            {"error": "validation failed", "fields": {"name": ["This field may not be blank."]}},
        ),
        (
            {"action": "create_session", "fields": {"guide": 1, "name": "x"}},
            400,
            {
                "error": "validation failed",
                "fields": {
                    "guide": ['Invalid pk "1" - object does not exist.'],
                    "start_time": ["This field is required."],
                },
            },
        ),
        (
            {
                "action": "csv_import",
                "guide": CDC,
                "sessions": [{"import_id": "cdc27-s001", "rank": 2}, {"name": "no start"}],
            },
            400,
            {
                "error": "validation failed",
                "fields": {"sessions": [{}, {"start_time": ["This field is required."]}]},
            },
        ),
    ],
)
def test_builder_refuses_bad_edits(
    control: httpx.Client,
    receiver: Receiver,
    gb: httpx.Client,
    body: dict[str, Any],
    status: int,
    error: dict[str, Any],
) -> None:
    hook_to(control, receiver)
    response = control.post("/guidebook/builder", json=body)
    assert response.status_code == status
    answer = response.json()
    if answer["error"].startswith("unknown action"):
        answer["error"] = answer["error"][: len(error["error"])]
    assert answer == error
    assert deliveries(control) == []
    assert gb.get(f"/sessions/{FIRST_SESSION}/").json()["rank"] == 0.0  # csv_import is atomic


# --- create_app ----------------------------------------------------------------------------------


async def test_create_app_webhook_options() -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get("GB_WEBHOOK_SECURITY_TOKEN"), await request.json()))
        return web.Response(status=204)

    sink = web.Application()
    sink.router.add_post("/in", hook)
    sink_server = TestServer(sink)
    await sink_server.start_server()
    app = create_app(
        webhook_url=str(sink_server.make_url("/in")),
        webhook_token="kwarg-token",
        webhook_events=["Builder-SessionCreated"],
    )
    server = TestServer(app)
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url("/")), headers=AUTH) as client:
            body = {"guide": CDC, "name": "Async", "start_time": "2027-04-20T20:00:00Z"}
            assert (await client.post("/open-api/v1/sessions/", json=body)).status_code == 201
            await client.delete(f"/open-api/v1/sessions/{FIRST_SESSION}/")  # not subscribed
            log = (await client.get("/__sandbox/guidebook/webhooks", params={"wait": 5})).json()
    finally:
        await server.close()
        await sink_server.close()
    assert [(e["event"], e["status"]) for e in log["deliveries"]] == [
        ("Builder-SessionCreated", 204)
    ]
    assert [(token, payload["event"]) for token, payload in received] == [
        ("kwarg-token", "Builder-SessionCreated")
    ]
