"""The OpenF1 emulator's live replay over real HTTP and MQTT: control, the clock filter, the
live-window gate, `latest`, and the broker's auth, connection limit, messages and outages."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiomqtt
import httpx
import pytest

from sessiongraph.sandbox import RunningSandbox, start_sandbox
from sessiongraph.sandbox._runner import parse_replay
from sessiongraph.sandbox.openf1 import DATA_DIR
from tests._servers import LoopThread

T = TypeVar("T")

RACE = 9839  # Abu Dhabi 2025 race, meeting 1276: 13:00Z to 15:00Z on 2025-12-07
START = datetime(2025, 12, 7, 13, tzinfo=UTC)
LIVE_DETAIL = (
    "Session in progress, access is restricted to authenticated users. "
    "Sign up here: https://openf1.org/auth.html"
)
NULL_STATUS = dict.fromkeys(
    (
        "session_key",
        "meeting_key",
        "speed",
        "from_seconds",
        "clock",
        "live",
        "finished",
        "published",
        "dropped",
    )
)


def stored(collection: str, session_key: int = RACE) -> list[dict[str, Any]]:
    rows = json.loads((DATA_DIR / f"{collection}.json").read_text())
    return [row for row in rows if row["session_key"] == session_key]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class Emulator:
    """An OpenF1 emulator of its own (the broker counts connections per account, so no other
    test's gateway may hold one), with its broker."""

    running: RunningSandbox
    http: httpx.Client

    @property
    def root(self) -> str:
        return self.running.roots["openf1"]

    @property
    def mqtt_port(self) -> int:
        return int(self.running.services["openf1_mqtt"].rsplit(":", 1)[1])

    @property
    def ws_port(self) -> int:
        return int(self.running.services["openf1_mqtt_ws"].rsplit(":", 1)[1].split("/")[0])

    def token(self) -> str:
        grant = self.http.post(
            self.root + "/token", data={"username": "sandbox", "password": "sandbox"}
        )
        assert grant.status_code == 200, grant.text
        token: str = grant.json()["access_token"]
        return token

    def replay(self, **body: Any) -> dict[str, Any]:
        response = self.http.post(self.root + "/__sandbox/replay", json=body)
        assert response.status_code == 200, response.text
        status: dict[str, Any] = response.json()
        return status

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.http.get(self.root + "/__sandbox/replay").json()
        return status

    def broker(self, running: bool) -> dict[str, Any]:
        response = self.http.post(self.root + "/__sandbox/replay/broker", json={"running": running})
        assert response.status_code == 200, response.text
        status: dict[str, Any] = response.json()
        return status

    def get(self, query: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(f"{self.root}/v1/{query}", headers=headers)

    def rows(self, query: str, token: str) -> list[dict[str, Any]]:
        response = self.get(query, token)
        if response.status_code == 404:
            assert response.json() == {"detail": "No results found."}
            return []
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows

    def mqtt(self, password: str | None, username: str | None = "me", **options: Any) -> Any:
        return aiomqtt.Client(
            "127.0.0.1", self.mqtt_port, username=username, password=password, **options
        )


@pytest.fixture(scope="module")
def emulator_session() -> Iterator[Emulator]:
    thread = LoopThread("openf1-replay")
    running = thread.run(lambda: start_sandbox(only=("openf1",)))
    with httpx.Client(timeout=10) as http:
        yield Emulator(running, http)
    thread.run(running.stop)
    thread.close()


@pytest.fixture
def emulator(emulator_session: Emulator) -> Emulator:
    emulator_session.http.post(emulator_session.root + "/__sandbox/reset").raise_for_status()
    return emulator_session


@pytest.fixture
def token(emulator: Emulator) -> str:
    return emulator.token()


def wait_for(probe: Callable[[], T | None], timeout: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


async def receive(client: Any, count: int) -> list[dict[str, Any]]:
    """The next `count` messages' payloads (within 5 s), with their topic under "topic"."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        async for message in client.messages:
            found.append({**json.loads(message.payload), "topic": str(message.topic)})
            if len(found) == count:
                break
    return found


# --- control ------------------------------------------------------------------------------------


def test_no_replay_is_all_nulls_with_the_broker(emulator: Emulator) -> None:
    status = emulator.status()
    broker = status.pop("broker")
    assert status == NULL_STATUS
    assert broker["running"] is True
    assert broker["url"] == emulator.running.services["openf1_mqtt"]
    assert broker["url"] == emulator.running.gateway_env["OPENF1_MQTT_URL"]
    assert broker["ws_url"] == emulator.running.services["openf1_mqtt_ws"]
    assert broker["ws_url"].endswith("/mqtt")


def test_start_status_and_stop(emulator: Emulator) -> None:
    started = emulator.replay(session_key=RACE, speed=60, from_seconds=0)
    assert started["session_key"] == RACE
    assert started["meeting_key"] == 1276
    assert started["speed"] == 60
    assert started["from_seconds"] == 0
    assert started["live"] is True
    assert started["finished"] is False
    first = instant(started["clock"])
    assert START <= first < START + timedelta(seconds=10)
    time.sleep(0.25)
    later = instant(emulator.status()["clock"])
    # 60 replay seconds per real second
    assert timedelta(seconds=15) <= later - first < timedelta(seconds=75)

    stopped = emulator.http.delete(emulator.root + "/__sandbox/replay")
    assert stopped.status_code == 200
    body = stopped.json()
    del body["broker"]
    assert body == NULL_STATUS
    assert emulator.get("sessions?session_key=9839").status_code == 200


def test_defaults_are_speed_one_from_the_start(emulator: Emulator) -> None:
    status = emulator.replay(session_key=RACE)
    assert status["speed"] == 1
    assert status["from_seconds"] == 0
    assert START <= instant(status["clock"]) < START + timedelta(seconds=2)


def test_a_new_replay_replaces_the_running_one(emulator: Emulator) -> None:
    emulator.replay(session_key=RACE, speed=5)
    status = emulator.replay(session_key=9488, speed=2, from_seconds=600)
    assert (status["session_key"], status["speed"], status["from_seconds"]) == (9488, 2, 600)
    assert emulator.status()["session_key"] == 9488


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"session_key": 1}, "unknown session_key 1"),
        ({"session_key": "9839"}, "session_key must be an integer"),
        ({"session_key": True}, "session_key must be an integer"),
        ({}, "session_key must be an integer"),
        ({"session_key": RACE, "speed": 0}, "speed must be above 0"),
        ({"session_key": RACE, "speed": -2}, "speed must be above 0"),
        ({"session_key": RACE, "speed": 1_000_000}, "at most 10000"),
        ({"session_key": RACE, "speed": "fast"}, "speed must be a finite number"),
        ({"session_key": RACE, "speed": True}, "speed must be a finite number"),
        ({"session_key": RACE, "from_seconds": "soon"}, "from_seconds must be a finite number"),
        ({"session_key": RACE, "from_seconds": -7200}, "from_seconds must lie in [-3600, 10800]"),
        ({"session_key": RACE, "from_seconds": 1e7}, "from_seconds must lie in"),
        ({"session_key": RACE, "sped": 2}, "unknown keys: sped"),
        ([RACE], "expected a JSON object"),
    ],
)
def test_bad_replays_are_400(emulator: Emulator, body: Any, message: str) -> None:
    response = emulator.http.post(emulator.root + "/__sandbox/replay", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert emulator.status()["session_key"] is None


def test_non_finite_and_non_json_bodies_are_400(emulator: Emulator) -> None:
    url = emulator.root + "/__sandbox/replay"
    nan = emulator.http.post(url, content=b'{"session_key": 9839, "speed": NaN}')
    assert nan.status_code == 400
    assert "finite" in nan.json()["error"]
    assert emulator.http.post(url, content=b"{").status_code == 400


# --- rows through the clock ---------------------------------------------------------------------


def test_rows_after_the_clock_are_hidden(emulator: Emulator, token: str) -> None:
    clock = START + timedelta(seconds=400)  # 13:06:40, and it hardly moves
    emulator.replay(session_key=RACE, speed=0.001, from_seconds=400)

    messages = emulator.rows("race_control?session_key=9839", token)
    expected = [row for row in stored("race_control") if instant(row["date"]) <= clock]
    assert messages == expected
    assert messages[-1]["date"] == "2025-12-07T13:05:29+00:00"  # the next is 13:06:50

    for name in ("position", "intervals", "weather", "team_radio", "pit"):
        rows = emulator.rows(f"{name}?session_key=9839", token)
        assert rows == [row for row in stored(name) if instant(row["date"]) <= clock], name

    samples = emulator.rows("car_data?session_key=9839&driver_number=1", token)
    last = instant(samples[-1]["date"])
    assert clock - timedelta(seconds=1) < last <= clock
    assert emulator.rows("session_result?session_key=9839", token) == []
    # Undated rows, and other sessions, are all there.
    assert len(emulator.rows("drivers?session_key=9839", token)) == 20
    assert emulator.rows("race_control?session_key=9488", token) == stored("race_control", 9488)


def test_a_lap_shows_its_start_then_its_completion(emulator: Emulator, token: str) -> None:
    stored_laps = {row["lap_number"]: row for row in stored("laps") if row["driver_number"] == 1}
    # VER: lap 3 started 13:06:28.715 and ends 89.555 s later; lap 4 starts 13:07:58.355.
    emulator.replay(session_key=RACE, speed=0.001, from_seconds=400)
    laps = emulator.rows("laps?session_key=9839&driver_number=1", token)
    assert [lap["lap_number"] for lap in laps] == [1, 2, 3]
    assert laps[0] == stored_laps[1]  # lap 1 has no date_start: it completed at lap 2's start
    assert laps[1] == stored_laps[2]
    opening = laps[2]
    assert list(opening) == list(stored_laps[3])
    assert opening["date_start"] == "2025-12-07T13:06:28.715000+00:00"
    assert opening["is_pit_out_lap"] is False
    assert opening["lap_duration"] is None
    assert opening["duration_sector_1"] is None
    assert opening["segments_sector_1"] is None
    # The stint has grown to the lap under way.
    (stint,) = emulator.rows("stints?session_key=9839&driver_number=1", token)
    assert (stint["stint_number"], stint["lap_start"], stint["lap_end"]) == (1, 1, 3)

    # Filters see the versions the clock has passed: none of lap 3 has a duration yet, and an
    # older version of the stint still matches the value it had (as OpenF1's server does).
    assert (
        emulator.rows("laps?session_key=9839&lap_number=3&driver_number=1&lap_duration>0", token)
        == []
    )
    (older,) = emulator.rows("stints?session_key=9839&driver_number=1&lap_end=2", token)
    assert older["lap_end"] == 2

    emulator.replay(session_key=RACE, speed=200, from_seconds=470)  # 13:07:50
    completed = wait_for(
        lambda: [
            lap
            for lap in emulator.rows("laps?session_key=9839&driver_number=1&lap_number=3", token)
            if lap["lap_duration"] is not None
        ]
    )
    assert completed == [stored_laps[3]]


def test_rows_appear_as_the_clock_passes_them(emulator: Emulator, token: str) -> None:
    emulator.replay(session_key=RACE, speed=100, from_seconds=400)  # 13:06:50 is 0.1 s away
    dates = wait_for(
        lambda: [
            row["date"]
            for row in emulator.rows("race_control?session_key=9839", token)
            if row["date"] == "2025-12-07T13:06:50+00:00"
        ]
    )
    assert dates == ["2025-12-07T13:06:50+00:00"]


def test_results_appear_when_the_session_ends(emulator: Emulator, token: str) -> None:
    emulator.replay(session_key=RACE, speed=20, from_seconds=7190)  # 0.5 s to the end
    assert emulator.rows("session_result?session_key=9839", token) == []
    results = wait_for(lambda: emulator.rows("session_result?session_key=9839", token))
    assert results == stored("session_result")


# --- the live-window gate and latest ------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["sessions?session_key=9839", "meetings", "drivers?session_key=9141", "laps?session_key=9488"],
)
def test_anonymous_clients_get_401_during_a_replay(
    emulator: Emulator, token: str, query: str
) -> None:
    emulator.replay(session_key=RACE, speed=10)
    anonymous = emulator.get(query)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": LIVE_DETAIL}
    assert emulator.get(query, "forged").status_code == 401
    assert emulator.get(query, token).status_code == 200
    emulator.http.delete(emulator.root + "/__sandbox/replay")
    assert emulator.get(query).status_code == 200


def test_the_gate_is_the_live_window_on_the_replay_clock(emulator: Emulator) -> None:
    # An hour before the start is outside OpenF1's window (30 min before to 30 min after).
    status = emulator.replay(session_key=RACE, speed=1, from_seconds=-3600)
    assert status["live"] is False
    assert emulator.get("sessions?session_key=9839").status_code == 200
    status = emulator.replay(session_key=RACE, speed=1, from_seconds=-1700)
    assert status["live"] is True
    assert emulator.get("sessions?session_key=9839").status_code == 401
    status = emulator.replay(session_key=RACE, speed=1, from_seconds=7200 + 1900)
    assert status["live"] is False
    assert emulator.get("sessions?session_key=9839").status_code == 200


def test_latest_is_the_replayed_session(emulator: Emulator, token: str) -> None:
    before = emulator.rows("sessions?session_key=latest", token)[0]["session_key"]
    emulator.replay(session_key=9488, speed=1, from_seconds=0)  # Australia 2024 race
    assert [s["session_key"] for s in emulator.rows("sessions?session_key=latest", token)] == [9488]
    meetings = emulator.rows("meetings?meeting_key=latest", token)
    assert [m["meeting_key"] for m in meetings] == [1231]
    # Its rows go through the clock too: at the start no lap has begun.
    assert emulator.rows("laps?session_key=latest", token) == []
    assert emulator.rows("drivers?session_key=latest", token) == stored("drivers", 9488)
    emulator.http.delete(emulator.root + "/__sandbox/replay")
    assert emulator.rows("sessions?session_key=latest", token)[0]["session_key"] == before


def test_reset_ends_the_replay_and_restarts_the_broker(emulator: Emulator) -> None:
    emulator.replay(session_key=RACE, speed=10)
    emulator.broker(False)
    emulator.http.post(emulator.root + "/__sandbox/reset").raise_for_status()
    status = emulator.status()
    assert status["session_key"] is None
    assert status["broker"]["running"] is True
    assert emulator.get("sessions?session_key=9839").status_code == 200


# --- MQTT ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"), [(None, None), ("me", None), ("me", "not-a-token"), ("", "nope")]
)
async def test_the_broker_refuses_without_a_valid_token(
    emulator: Emulator, username: str | None, password: str | None
) -> None:
    with pytest.raises(aiomqtt.MqttCodeError) as refused:
        async with emulator.mqtt(password, username):
            pass
    assert str(refused.value.rc) == "Not authorized"  # CONNACK 5


async def test_the_broker_accepts_a_token_with_any_username(emulator: Emulator, token: str) -> None:
    async with emulator.mqtt(token, "anyone"), emulator.mqtt(token, "someone else"):
        assert emulator.status()["broker"]["connections"] == 2
    async with aiomqtt.Client(
        "127.0.0.1",
        emulator.ws_port,
        username="web",
        password=token,
        transport="websockets",
        websocket_path="/mqtt",
    ):
        pass


def expected_keys(rows: list[dict[str, Any]]) -> list[str]:
    """race_control's `_key`: session and date, with `_1`, `_2` for repeats of a date."""
    keys, seen = [], dict[str, int]()
    for row in rows:
        key = f"{row['session_key']}_{row['date']}"
        count = seen.get(key, 0)
        seen[key] = count + 1
        keys.append(key if not count else f"{key}_{count}")
    return keys


async def test_race_control_messages_arrive_in_order(emulator: Emulator, token: str) -> None:
    rows = stored("race_control")
    keys = dict(zip(map(id, rows), expected_keys(rows), strict=True))
    after = START + timedelta(seconds=200)  # 13:03:20: the next message is at 13:03:28
    wanted = [row for row in rows if instant(row["date"]) > after][:25]
    async with emulator.mqtt(token) as client:
        await client.subscribe("v1/race_control")
        emulator.replay(session_key=RACE, speed=1000, from_seconds=200)
        messages = await receive(client, len(wanted))
    ids = [message.pop("_id") for message in messages]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [message.pop("_key") for message in messages] == [keys[id(row)] for row in wanted]
    assert {message.pop("topic") for message in messages} == {"v1/race_control"}
    assert messages == wanted
    assert list(messages[0]) == list(wanted[0])  # the stored key order, then _id and _key


async def test_a_lap_is_published_twice_under_one_key(emulator: Emulator, token: str) -> None:
    stored_laps = {row["lap_number"]: row for row in stored("laps") if row["driver_number"] == 1}
    async with emulator.mqtt(token) as client:
        await client.subscribe("v1/laps")
        await client.subscribe("v1/stints")
        emulator.replay(session_key=RACE, speed=1000, from_seconds=400)  # in VER's lap 3
        found: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            async for message in client.messages:
                payload = json.loads(message.payload)
                if payload["driver_number"] == 1:
                    found.append({**payload, "topic": str(message.topic)})
                if len(found) == 4:
                    break
    # Lap 3 completes, lap 4 opens (and the stint grows to it), and later lap 4 completes.
    assert [(m["topic"], m["_key"]) for m in found] == [
        ("v1/laps", "9839_1_3"),
        ("v1/laps", "9839_1_4"),
        ("v1/stints", "9839_1_1"),
        ("v1/laps", "9839_1_4"),
    ]
    assert [m["_id"] for m in found] == sorted(m["_id"] for m in found)
    for message in found:
        del message["_id"], message["_key"], message["topic"]
    assert found[0] == stored_laps[3]
    assert found[1]["lap_duration"] is None
    assert found[1]["date_start"] == stored_laps[4]["date_start"]
    assert found[2]["lap_end"] == 4
    assert found[3] == stored_laps[4]


async def test_the_eleventh_connection_of_an_account_is_refused(
    emulator: Emulator, token: str
) -> None:
    wait_for(lambda: emulator.status()["broker"]["connections"] == 0 or None)
    other_token = emulator.token()  # the same account: the limit is per user, not per token
    async with AsyncExitStack() as stack:
        for n in range(10):
            await stack.enter_async_context(emulator.mqtt(token, f"user-{n}"))
        assert emulator.status()["broker"]["connections"] == 10
        with pytest.raises(aiomqtt.MqttCodeError) as refused:
            async with emulator.mqtt(other_token, "eleventh"):
                pass
        assert str(refused.value.rc) == "Not authorized"
        assert emulator.status()["broker"]["connections"] == 10
    # Once they have gone, there is room again.
    wait_for(lambda: emulator.status()["broker"]["connections"] == 0 or None)
    async with emulator.mqtt(other_token, "eleventh"):
        pass


async def test_the_broker_goes_down_and_comes_back(emulator: Emulator, token: str) -> None:
    async with emulator.mqtt(token) as client:
        await client.subscribe("v1/#")
        stopped = emulator.broker(False)
        assert stopped["running"] is False
        with pytest.raises(aiomqtt.MqttError):
            await receive(client, 1)
    with pytest.raises(aiomqtt.MqttError):
        async with emulator.mqtt(token):
            pass
    # The replay runs on: what it passes while the broker is down is lost, _ids and all.
    emulator.replay(session_key=RACE, speed=1000, from_seconds=200)
    lost = wait_for(lambda: emulator.status()["dropped"])
    assert emulator.status()["published"] == 0
    assert emulator.broker(True)["running"] is True
    async with emulator.mqtt(token) as client:
        await client.subscribe("v1/race_control")
        (message,) = await receive(client, 1)
    assert message["_id"] > lost
    assert emulator.status()["published"] > 0


def test_broker_control_rejects_bad_bodies(emulator: Emulator) -> None:
    url = emulator.root + "/__sandbox/replay/broker"
    assert emulator.http.post(url, json={"running": "no"}).status_code == 400
    assert emulator.http.post(url, json={"running": False, "x": 1}).status_code == 400
    assert emulator.http.post(url, content=b"{").status_code == 400
    assert emulator.http.get(url).json()["running"] is True


# --- starting with a replay ---------------------------------------------------------------------


def test_parse_replay() -> None:
    assert parse_replay("9839@10") == (9839, 10.0)
    assert parse_replay("9839") == (9839, 1.0)
    assert parse_replay("9839@0.5") == (9839, 0.5)
    for bad in ("", "latest", "9839@", "9839@0", "9839@-3", "9839@fast", "9839@inf"):
        with pytest.raises(ValueError, match=r"SESSION_KEY|SPEED"):
            parse_replay(bad)


@asynccontextmanager
async def sandbox_with(**options: Any) -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox(only=("openf1",), **options)
    try:
        yield running
    finally:
        await running.stop()


async def test_start_sandbox_with_a_replay() -> None:
    async with sandbox_with(replay=(RACE, 10.0)) as running, httpx.AsyncClient() as http:
        status = (await http.get(running.roots["openf1"] + "/__sandbox/replay")).json()
        assert (status["session_key"], status["speed"], status["from_seconds"]) == (RACE, 10, 0)
        env = running.gateway_env
        assert env["OPENF1_MQTT_URL"] == running.services["openf1_mqtt"]
        assert env["OPENF1_MQTT_URL"].startswith("mqtt://127.0.0.1:")
        assert (env["OPENF1_USERNAME"], env["OPENF1_PASSWORD"]) == ("sandbox", "sandbox")
    with pytest.raises(ValueError, match="unknown session_key 1"):
        async with sandbox_with(replay=(1, 1.0)):
            pass
    with pytest.raises(ValueError, match="needs the openf1 emulator"):
        await start_sandbox(only=("sqlrace",), replay=(RACE, 1.0))


REPLAY = ("--replay", "9839@30")


def test_the_module_cli_takes_a_replay() -> None:
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "sessiongraph.sandbox", "--json", "--stop-on-stdin-eof", *REPLAY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["env"]["OPENF1_MQTT_URL"] == started["services"]["openf1_mqtt"]
        root = started["base_urls"]["openf1"].removesuffix("/v1")
        status = httpx.get(root + "/__sandbox/replay").json()
        assert (status["session_key"], status["speed"]) == (RACE, 30)
    finally:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.close()
        process.wait(15)
        process.stdout.close()
    bad = subprocess.run(
        [sys.executable, "-m", "sessiongraph.sandbox", "--replay", "9839@0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "SPEED must be a positive number" in bad.stderr
