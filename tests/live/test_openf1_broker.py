"""OpenF1's broker as the live source, through the gateway against the emulator's replay: one
connection per deployment (Redis lease), fan-out to other workers, outages and recovery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from sessiongraph.live.openf1_mqtt import LiveFeedLost, OpenF1Mqtt
from tests._servers import CuttableLink, Gateway, Sandbox, free_port, wait_for_port

LAPS = "subscription { f1Laps(latest: true) { driverNumber lapNumber lapDuration } }"


def replay(sandbox: Sandbox, speed: float = 30) -> dict[str, Any]:
    body = {"session_key": 9839, "speed": speed, "from_seconds": 600}
    response = httpx.post(sandbox.root("openf1") + "/__sandbox/replay", json=body)
    response.raise_for_status()
    status: dict[str, Any] = response.json()
    return status


def broker(sandbox: Sandbox) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(sandbox.root("openf1") + "/__sandbox/replay").json()
    return found["broker"]  # type: ignore[no-any-return]


def account(url: str, **more: Any) -> dict[str, Any]:
    return {
        "openf1_username": "sandbox",
        "openf1_password": "sandbox",
        "openf1_rate_per_minute": 0,
        "live_poll_seconds": 0.5,
        "openf1_mqtt_url": url,
        **more,
    }


async def laps(gateway: Gateway, count: int, seconds: float = 30) -> list[dict[str, Any]]:
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    found: list[dict[str, Any]] = []
    async with graphql_socket(url) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": LAPS}}))
        async with asyncio.timeout(seconds):
            while len(found) < count:
                message = json.loads(await ws.recv())
                assert message["type"] == "next", message
                found.append(message["payload"]["data"]["f1Laps"])
    return found


def graphql_socket(url: str) -> Any:
    """A graphql-transport-ws connection whose events queue without bound: with websockets'
    bounded queue full, the client stops reading, and its close waits 10 s for a close frame it
    cannot see (tests here read laps on one socket while the others' pile up)."""
    return websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None)


def requests_to(sandbox: Sandbox, path: str) -> int:
    count: int = sandbox.stats("openf1")["by_path"].get(path, 0)
    return count


async def test_events_come_from_the_broker_not_from_polls(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox
) -> None:
    status = replay(sandbox)
    gateway = make_gateway(**account(status["broker"]["url"]))
    events = await laps(gateway, 30)
    assert len(events) == 30
    # The baseline and one gap-filling read; everything else came over MQTT.
    assert requests_to(sandbox, "/v1/laps") <= 3
    assert gateway.app.state.live.mqtt.status()["failures"] == 0


async def test_two_gateways_sharing_redis_hold_one_broker_connection(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox, redis_url: str
) -> None:
    status = replay(sandbox)
    settings = account(status["broker"]["url"], cache_url=redis_url)
    first, second = make_gateway(**settings), make_gateway(**settings)
    both = await asyncio.gather(laps(first, 20), laps(second, 20))
    assert all(len(events) == 20 for events in both)
    assert broker(sandbox)["connections"] == 1
    holders = [g.app.state.live.mqtt.holder for g in (first, second)]
    assert sorted(holders) == [False, True]


async def test_a_broker_outage_falls_back_to_polling_and_misses_nothing(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox
) -> None:
    status = replay(sandbox, speed=60)
    gateway = make_gateway(**account(status["broker"]["url"]))
    gateway.app.state.live.mqtt.lease_seconds = 1.0
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    received: list[tuple[int, int, Any]] = []
    async with graphql_socket(url) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": LAPS}}))

        async def take(count: int) -> None:
            async with asyncio.timeout(60):
                for _ in range(count):
                    message = json.loads(await ws.recv())
                    assert message["type"] == "next", message
                    lap = message["payload"]["data"]["f1Laps"]
                    received.append((lap["driverNumber"], lap["lapNumber"], lap["lapDuration"]))

        await take(10)
        polls = requests_to(sandbox, "/v1/laps")
        async with httpx.AsyncClient() as http:
            stop = {"running": False}
            await http.post(sandbox.root("openf1") + "/__sandbox/replay/broker", json=stop)
            await take(30)  # the stream goes on: polled meanwhile
            assert requests_to(sandbox, "/v1/laps") > polls
            start = {"running": True}
            await http.post(sandbox.root("openf1") + "/__sandbox/replay/broker", json=start)
        await take(10)
    assert len(received) == len(set(received))  # nothing twice
    # Every completed lap arrives once, whether from the broker or a poll.
    completed = [(d, n) for d, n, duration in received if duration is not None]
    assert len(completed) == len(set(completed))


def patient_gateways(
    make_gateway: Callable[..., Gateway], request: pytest.FixtureRequest, workers: int, url: str
) -> list[Gateway]:
    """`workers` gateways with an account on the broker at `url` (sharing Redis when several),
    each giving the broker up only after a lease of 60 s."""
    shared = {"cache_url": request.getfixturevalue("redis_url")} if workers > 1 else {}
    gateways = [make_gateway(**account(url, **shared)) for _ in range(workers)]
    for gateway in gateways:
        gateway.app.state.live.mqtt.lease_seconds = 60.0
    return gateways


@pytest.mark.parametrize("workers", [1, 2])
async def test_while_the_broker_cannot_be_reached_the_feeds_poll(
    make_gateway: Callable[..., Gateway],
    sandbox: Sandbox,
    request: pytest.FixtureRequest,
    workers: int,
) -> None:
    replay(sandbox, speed=60)
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        nowhere = f"mqtt://127.0.0.1:{closed.getsockname()[1]}"
    # The broker is given up only after the lease: no feed may wait that long.
    gateways = patient_gateways(make_gateway, request, workers, nowhere)
    found = await asyncio.gather(*(laps(gateway, 10, seconds=15) for gateway in gateways))
    assert [len(events) for events in found] == [10] * workers
    # A baseline, then polls (workers sharing Redis share reads too).
    assert requests_to(sandbox, "/v1/laps") > 2


class LapFollower:
    """A graphql-transport-ws subscriber to the replay's laps: which it saw, and their starts."""

    QUERY = "subscription { f1Laps(latest: true) { driverNumber lapNumber dateStart } }"

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: set[tuple[int, int]] = set()
        self.starts: list[str] = []

    async def start(self) -> None:
        await self.ws.send(json.dumps({"type": "connection_init"}))
        await self.ws.recv()
        payload = {"query": self.QUERY}
        await self.ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))

    async def take(self, count: int) -> None:
        for _ in range(count):
            message = json.loads(await self.ws.recv())
            assert message["type"] == "next", message
            lap = message["payload"]["data"]["f1Laps"]
            self.seen.add((lap["driverNumber"], lap["lapNumber"]))
            if lap["dateStart"] is not None:
                self.starts.append(lap["dateStart"])

    async def take_until(self, moment: datetime) -> None:
        """Takes laps until one that began after `moment` has arrived."""
        while not self.starts or datetime.fromisoformat(max(self.starts)) <= moment:
            await self.take(1)

    async def missing(self, rows: list[dict[str, Any]]) -> set[tuple[int, int]]:
        """Laps OpenF1 serves that started within what was received and did not arrive (a
        follower hears the broker is back after newer laps, so the stream is read on until the
        read-back ones have come)."""
        first, last = min(self.starts), max(self.starts)
        expected = {
            (row["driver_number"], row["lap_number"])
            for row in rows
            if row["date_start"] is not None and first <= _utc(row["date_start"]) <= last
        }
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15):
                while expected - self.seen:
                    await self.take(1)
        return expected - self.seen


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_broker_pause_shorter_than_the_lease_misses_nothing(
    make_gateway: Callable[..., Gateway],
    sandbox: Sandbox,
    request: pytest.FixtureRequest,
    workers: int,
) -> None:
    status = replay(sandbox, speed=60)
    # The pause never makes them give the broker up.
    gateways = patient_gateways(make_gateway, request, workers, status["broker"]["url"])
    polls, missing = await follow_through_an_outage(sandbox, gateways, broker_running(sandbox))
    assert missing == [set()] * workers
    # Read once the broker was back (a follower may hear of that after newer messages).
    assert requests_to(sandbox, "/v1/laps") > polls


async def test_a_broker_pause_between_two_reads_of_its_state_misses_nothing(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox, request: pytest.FixtureRequest
) -> None:
    # Workers sharing Redis read whether the broker is up now and then; the gap signal on the
    # relay tells them of a pause they did not see.
    status = replay(sandbox, speed=60)
    gateways = patient_gateways(make_gateway, request, 2, status["broker"]["url"])
    outage = broker_running(sandbox)
    _, missing = await follow_through_an_outage(sandbox, gateways, outage, unseen=True)
    assert missing == [set(), set()]


async def test_a_redis_outage_shorter_than_the_lease_misses_nothing(
    make_gateway: Callable[..., Gateway], sandbox: Sandbox, redis_url: str
) -> None:
    # Cut off from Redis, the holder cannot relay what the broker sends: the gap signal tells
    # the followers once Redis is back. The holder keeps its lease, and the broker one connection.
    status = replay(sandbox, speed=60)
    link = CuttableLink(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    try:
        through_link = f"redis://127.0.0.1:{link.port}/0"
        settings = account(status["broker"]["url"], cache_url=through_link)
        gateways = [make_gateway(**settings) for _ in range(2)]
        for gateway in gateways:
            gateway.app.state.live.mqtt.lease_seconds = 60.0

        async def redis_reachable(up: bool) -> None:
            await asyncio.to_thread(link.restore if up else link.cut)

        _, missing = await follow_through_an_outage(sandbox, gateways, redis_reachable)
        assert missing == [set(), set()]
        assert broker(sandbox)["connections"] == 1
    finally:
        link.close()


def broker_running(sandbox: Sandbox) -> Callable[[bool], Awaitable[None]]:
    """Stops (False) and starts (True) the emulator's MQTT broker."""

    async def running(up: bool) -> None:
        async with httpx.AsyncClient() as http:
            control = sandbox.root("openf1") + "/__sandbox/replay/broker"
            (await http.post(control, json={"running": up})).raise_for_status()

    return running


async def follow_through_an_outage(
    sandbox: Sandbox,
    gateways: list[Gateway],
    outage: Callable[[bool], Awaitable[None]],
    *,
    unseen: bool = False,
) -> tuple[int, list[set[tuple[int, int]]]]:
    """Follows the replay's laps on each gateway through a 3 s `outage` (called with False,
    then True; `unseen`: no follower reads the broker state meanwhile); the laps requests made
    before it ended and, per gateway, the laps that never arrived."""
    async with contextlib.AsyncExitStack() as stack:
        followers = []
        for gateway in gateways:
            url = gateway.url.replace("http://", "ws://") + "/graphql"
            ws = await stack.enter_async_context(graphql_socket(url))
            followers.append(LapFollower(ws))
        async with asyncio.timeout(60):
            await asyncio.gather(*(follower.start() for follower in followers))
            await asyncio.gather(*(follower.take(10) for follower in followers))
            if unseen:
                await stop_reading_the_broker_state(gateways)
            await outage(False)
            polls = requests_to(sandbox, "/v1/laps")
            await asyncio.sleep(3)  # laps go on meanwhile; none of them reach the gateways
            await outage(True)
            async with httpx.AsyncClient() as http:
                resumed = (await http.get(sandbox.root("openf1") + "/__sandbox/replay")).json()
            # Laps buffered before the pause come first: read on to laps begun after it.
            past = datetime.fromisoformat(resumed["clock"])
            await asyncio.gather(*(follower.take_until(past) for follower in followers))
        rows = await rows_now(sandbox, "laps")
        missing = await asyncio.gather(*(follower.missing(rows) for follower in followers))
    return polls, missing


async def stop_reading_the_broker_state(gateways: list[Gateway]) -> None:
    """Once the relay sends every listener its topic, the gateways read the broker state no
    more, as if an outage fell between two reads."""
    for gateway in gateways:
        mqtt = gateway.app.state.live.mqtt
        async with asyncio.timeout(10):
            # The events belong to the gateway's loop, in its own thread: look, do not await.
            while not all(  # noqa: ASYNC110
                listener.subscribed.is_set()
                for listeners in list(mqtt.listeners.values())
                for listener in listeners
            ):
                await asyncio.sleep(0.05)
        mqtt.state_check_seconds = 600.0
    await asyncio.sleep(1.5)  # the reads under way end; the next is ten minutes away


async def rows_now(sandbox: Sandbox, collection: str) -> list[dict[str, Any]]:
    """What OpenF1 serves of the replayed session now, read with the account's token."""
    root = sandbox.root("openf1")
    async with httpx.AsyncClient() as http:
        account = {"username": "sandbox", "password": "sandbox"}
        token = (await http.post(root + "/token", data=account)).json()["access_token"]
        answer = await http.get(
            f"{sandbox.base_url('openf1')}/{collection}?session_key=9839",
            headers={"Authorization": f"Bearer {token}"},
        )
    answer.raise_for_status()
    rows: list[dict[str, Any]] = answer.json()
    return rows


def _utc(text: str) -> str:
    """OpenF1's date as the gateway writes it (ISO 8601, UTC offset), to compare as text."""
    return datetime.fromisoformat(text).astimezone(UTC).isoformat()


async def test_a_refused_password_renews_the_token_then_reports_the_loss(sandbox: Sandbox) -> None:
    status = replay(sandbox)
    renewed: list[bool] = []

    async def password() -> str:
        return "not-a-token"

    async def rejected() -> None:
        renewed.append(True)

    mqtt = OpenF1Mqtt(
        status["broker"]["url"],
        password,
        password_rejected=rejected,
        lease_seconds=1,
        reconnect_seconds=(0.1, 0.2),
    )
    try:
        async with mqtt.topic("laps") as messages:
            with pytest.raises(LiveFeedLost):
                async with asyncio.timeout(15):
                    await anext(messages)
    finally:
        await mqtt.close()
    assert renewed == [True]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[str]:
    """A real mosquitto from Debian on a free port, anonymous, for the client's own checks."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.skip("mosquitto is not installed (make system-deps installs it)")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    child = subprocess.Popen([binary, "-c", str(config)], stderr=subprocess.DEVNULL)  # noqa: S603
    wait_for_port(port, child)
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(10)


async def test_against_mosquitto_topics_are_refcounted_and_messages_decoded(
    mosquitto: str,
) -> None:
    import aiomqtt

    async def password() -> str:
        return "anything"

    mqtt = OpenF1Mqtt(mosquitto, password, lease_seconds=2, reconnect_seconds=(0.1, 0.5))
    host, port = mosquitto.removeprefix("mqtt://").split(":")
    try:
        async with aiomqtt.Client(host, int(port)) as publisher:
            async with mqtt.topic("race_control") as messages:
                for _ in range(50):  # until our subscription is in place
                    await publisher.publish("v1/race_control", b'{"_id": 1, "message": "x"}')
                    await publisher.publish("v1/race_control", b"not json")
                    try:
                        async with asyncio.timeout(0.2):
                            first = await anext(messages)
                        break
                    except TimeoutError:
                        continue
                assert first == {"_id": 1, "message": "x"}
            assert mqtt.status()["topics"] == []
    finally:
        await mqtt.close()
