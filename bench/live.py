"""Live subscriptions against a replay: delivery latency, what N subscribers cost upstream,
messages lost or duplicated, and memory per subscriber.

Run: `python bench/live.py [--speed 10] [--seconds 30] [--source mqtt|poll]
[--subscribers 1,100,1000] [--workers 1]`. Replays race 9839 in the OpenF1 emulator and
subscribes to `f1Laps` over graphql-transport-ws with 1, 100 and 1,000 subscribers (20 per
connection). Prints, per count: events, delivery latency p50/p99 from the moment the replay
clock passes a row (when the emulator publishes it) to the client receiving it (for rows that
appeared after the subscription began: it starts from what a query shows, which a cache may
hold a little older), upstream REST requests and broker connections during the window, rows
lost or duplicated against the session's laps read afterwards, and the gateway's RSS per 1,000
subscribers. With `--workers` above 1 the workers share one broker connection through a Redis
lease. Goals: p50 at most 100 ms over the replay's own lag (0 here) with the broker; the same
upstream cost for 1, 100 and 1,000; nothing lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emulators, gateway_pids, gateway_process, redis_server, rss_mib

RACE = 9839
PER_CONNECTION = 20
SUBSCRIPTION = (
    "subscription { f1Laps(latest: true) { driverNumber lapNumber dateStart lapDuration } }"
)


def instant(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class Clock:
    """The replay's clock against wall time: when a row dated `d` became visible."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.speed = float(status["speed"])
        self.wall = time.time()
        self.replay = instant(status["clock"])

    def visible_at(self, date: str) -> float:
        return self.wall + (instant(date) - self.replay) / self.speed


async def subscribers(
    url: str, count: int, seconds: float, clock: Clock
) -> tuple[list[list[tuple[Any, ...]]], list[float]]:
    """`count` subscriptions for `seconds`; each one's events, and every delivery's latency."""
    received: list[list[tuple[Any, ...]]] = [[] for _ in range(count)]
    latencies: list[float] = []
    ws_url = url.replace("http://", "ws://") + "/graphql"
    ready = asyncio.Event()
    opened = 0
    connections = (count + PER_CONNECTION - 1) // PER_CONNECTION

    async def connection(first: int) -> None:
        nonlocal opened
        ids = range(first, min(first + PER_CONNECTION, count))
        async with websockets.connect(
            ws_url, subprotocols=["graphql-transport-ws"], max_queue=None
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            await ws.recv()
            for n in ids:
                message = {"id": str(n), "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
                await ws.send(json.dumps(message))
            opened += 1
            if opened == connections:
                ready.set()
            subscribed = time.time()
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    raw = await asyncio.wait_for(ws.recv(), left)
                except TimeoutError:
                    break
                now = time.time()
                message = json.loads(raw)
                if message.get("type") != "next":
                    continue
                lap = message["payload"]["data"]["f1Laps"]
                key = (lap["driverNumber"], lap["lapNumber"], lap["lapDuration"])
                received[int(message["id"])].append((*key, now))
                if lap["dateStart"] and lap["lapDuration"] is not None:
                    # A completed lap appears when its end passes on the replay clock; one
                    # that appeared before this subscription (after the cached view it started
                    # from) has no delivery latency to speak of.
                    end = instant(lap["dateStart"]) + lap["lapDuration"]
                    visible = clock.wall + (end - clock.replay) / clock.speed
                    if visible >= subscribed:
                        latencies.append(now - visible)

    await asyncio.gather(*(connection(first) for first in range(0, count, PER_CONNECTION)))
    return received, latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--source", choices=("mqtt", "poll"), default="mqtt")
    parser.add_argument("--subscribers", default="1,100,1000", help="counts, comma-separated")
    parser.add_argument(
        "--workers", type=int, default=1, help="more than 1: sharing one broker connection (Redis)"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.subscribers.split(",")]
    with emulators() as sandbox:
        replay = {"session_key": RACE, "speed": args.speed, "from_seconds": 600}
        status = sandbox.control("openf1", "replay", replay)
        env = {
            **sandbox.env,
            "SANDBOX": "true",
            "CACHE_URL": "none",
            "OPENF1_USERNAME": "sandbox",
            "OPENF1_PASSWORD": "sandbox",
            "OPENF1_RATE_PER_MINUTE": "0",
            "OPENF1_RATE_PER_SECOND": "0",
            "LIVE_POLL_SECONDS": "1",
            "MAX_SUBSCRIPTIONS_PER_CONNECTION": str(PER_CONNECTION),
        }
        if args.source == "mqtt":
            env["OPENF1_MQTT_URL"] = status["broker"]["url"]
        else:
            env["OPENF1_MQTT_URL"] = "mqtt://127.0.0.1:1"  # nothing listens: polling
        stats_url = sandbox.root("openf1") + "/__sandbox/stats"
        replay_url = sandbox.root("openf1") + "/__sandbox/replay"
        with contextlib.ExitStack() as stack:
            if args.workers > 1:
                # One broker connection for the deployment: the workers hold a Redis lease.
                env["CACHE_URL"] = stack.enter_context(redis_server())
            url = stack.enter_context(gateway_process(env, workers=args.workers))
            pid = gateway_pids[url]
            workers = args.workers > 1
            print(
                f"replay of {RACE} at {args.speed:g}x, {args.seconds:g} s per run, "
                f"source {args.source}, {args.workers} worker(s)"
            )
            print(
                f"{'subscribers':>11} {'events':>7} {'p50 ms':>7} {'p99 ms':>7} "
                f"{'upstream':>8} {'broker':>6} {'lost':>5} {'dup':>5} {'RSS MiB':>8}"
            )
            baseline_rss = rss_mib(pid, children=workers)
            for count in counts:
                clock = Clock(httpx.get(replay_url).json())
                before = httpx.get(stats_url).json()["requests"]
                result = asyncio.run(
                    _measured(url, count, args.seconds, clock, replay_url, pid, workers)
                )
                received, latencies, connections, rss = result
                upstream = httpx.get(stats_url).json()["requests"] - before
                lost, duplicated = _check(received)
                events = sum(len(r) for r in received)
                ordered = sorted(latencies) or [float("nan")]
                p50 = statistics.median(ordered) * 1000
                p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000
                print(
                    f"{count:>11} {events:>7} {p50:>7.0f} {p99:>7.0f} {upstream:>8} "
                    f"{connections:>6} {lost:>5} {duplicated:>5} {rss:>8.1f}"
                )
                if count == 1000:
                    print(f"RSS per 1,000 subscribers: {rss - baseline_rss:.1f} MiB")


async def _measured(
    url: str, count: int, seconds: float, clock: Clock, replay_url: str, pid: int, workers: bool
) -> tuple[list[list[tuple[Any, ...]]], list[float], int, float]:
    rss = 0.0
    connections = 0

    async def sample() -> None:
        nonlocal rss, connections
        await asyncio.sleep(seconds / 2)
        rss = rss_mib(pid, children=workers)
        async with httpx.AsyncClient() as http:
            status = (await http.get(replay_url)).json()
        connections = status["broker"].get("connections", 0)

    (received, latencies), _ = await asyncio.gather(
        subscribers(url, count, seconds, clock), sample()
    )
    return received, latencies, connections, rss


def _check(received: list[list[tuple[Any, ...]]]) -> tuple[int, int]:
    """Versions lost (another subscriber got it while this one was surely subscribed: a second
    after its first event, until three seconds before the end) and duplicated (twice to one)."""
    first_seen: dict[tuple[Any, ...], float] = {}
    for events in received:
        for *key, at in events:
            first_seen[tuple(key)] = min(at, first_seen.get(tuple(key), at))
    end = max(first_seen.values(), default=0.0)
    lost = duplicated = 0
    for events in received:
        if not events:
            continue
        keys = [tuple(key) for *key, _ in events]
        duplicated += len(keys) - len(set(keys))
        start = events[0][-1] + 1
        expected = {k for k, at in first_seen.items() if start <= at <= end - 3}
        lost += len(expected - set(keys))
    return lost, duplicated


if __name__ == "__main__":
    main()
