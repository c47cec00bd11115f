"""sessiongraph's execution overhead: the season query against a bare strawberry app over the
same rows in memory, and a race's laps against serializing the same rows with orjson alone.

Run: `python bench/overhead.py [--requests N]`. Prints, from one run: requests/s and p50 at
concurrency 1 and 16 for bare strawberry, sessiongraph with the cache off (catalogue on, the
default, and off with OpenF1 at 20 ms), and with the cache on; then the time to answer all
1,156 laps of a race uncached against orjson serializing the same rows; last, the throughput
ratio at 16 again from rounds alternating between the two apps (the headline figure: drift on
a noisy machine hits both alike). Goals: >= 0.8 x bare strawberry's throughput at 16;
cache-off p50 at 1 <= 1.1 x the upstream critical path (two requests of 20 ms when every
lookup asks OpenF1).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emulators, gateway_process, run_load

HERE = Path(__file__).resolve().parent
SEASON_QUERY = (
    "{ meetings(filter:{year:{eq:2023}}) { sessions { sessionName meeting { meetingName } } } }"
)
LAPS_QUERY = """{ f1Session(key: 9839) { laps { driverNumber lapNumber dateStart lapDuration
  durationSector1 durationSector2 durationSector3 i1Speed i2Speed stSpeed isPitOutLap } } }"""
LATENCY_MS = 20
ROUNDS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def bare_app() -> Iterator[str]:
    port = free_port()
    child = subprocess.Popen([sys.executable, str(HERE / "bare_strawberry.py"), str(port)])  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(url, json={"query": "{ __typename }"}, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        child.terminate()
        child.wait(10)


def measure(
    url: str, query: str, requests: int, path: str = "/graphql"
) -> list[tuple[int, float, float]]:
    run_load(url, query, concurrency=4, requests=16, path=path)  # warm-up
    rows = []
    for concurrency in (1, 16):
        count = requests if concurrency == 16 else max(40, requests // 4)
        result = run_load(url, query, concurrency=concurrency, requests=count, path=path)
        assert result.errors == 0, f"{result.errors} errors from {url}"
        rows.append((concurrency, result.rps, result.p50))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    table: dict[str, list[tuple[int, float, float]]] = {}
    with bare_app() as url:
        table["bare strawberry (memory)"] = measure(url, SEASON_QUERY, args.requests, path="")
    with emulators() as sandbox:
        sandbox.control("openf1", "faults", {"latency_ms": LATENCY_MS})
        variants = {
            "sessiongraph, cache off": {"CACHE_URL": "none"},
            "sessiongraph, cache off, no catalogue": {
                "CACHE_URL": "none",
                "OPENF1_CATALOGUE": "false",
            },
            "sessiongraph, cache on": {},
        }
        for label, overrides in variants.items():
            with gateway_process({**sandbox.env, **overrides}) as url:
                table[label] = measure(url, SEASON_QUERY, args.requests)
        sandbox.control("openf1", "faults", {})
        with gateway_process({**sandbox.env, "CACHE_URL": "none"}) as url:
            laps = run_load(url, LAPS_QUERY, concurrency=1, requests=20)
            rows = httpx.get(sandbox.base_urls["openf1"] + "/laps?session_key=9839").json()
            # The headline ratio from rounds that alternate between the two apps, both up at
            # once, so a machine that slows down mid-run slows both alike.
            with bare_app() as bare_url:
                run_load(bare_url, SEASON_QUERY, concurrency=4, requests=16, path="")  # warm-up
                rounds = []
                for _ in range(ROUNDS):
                    load = {"concurrency": 16, "requests": args.requests}
                    bare = run_load(bare_url, SEASON_QUERY, path="", **load).rps
                    ours = run_load(url, SEASON_QUERY, **load).rps
                    rounds.append((bare, ours))
    print(f"season query (OpenF1 emulator at {LATENCY_MS} ms where asked)")
    print(f"{'variant':<40} {'conc':>4} {'req/s':>8} {'p50 ms':>8}")
    for label, measured in table.items():
        for concurrency, rps, p50 in measured:
            print(f"{label:<40} {concurrency:>4} {rps:>8.1f} {p50:>8.1f}")
    bare_rps = table["bare strawberry (memory)"][1][1]
    ours_rps = table["sessiongraph, cache off"][1][1]
    print(f"cache off / bare strawberry throughput at 16: {ours_rps / bare_rps:.2f} (goal >= 0.8)")
    listed = ", ".join(f"{ours:.0f}/{bare:.0f}" for bare, ours in rounds)
    ratio = statistics.median(ours / bare for bare, ours in rounds)
    print(
        f"the same in {ROUNDS} alternating rounds (req/s ours/bare: {listed}): median "
        f"{ratio:.2f} (goal >= 0.8)"
    )
    asking = table["sessiongraph, cache off, no catalogue"][0][2]
    print(
        f"no-catalogue p50 at 1 / critical path ({2 * LATENCY_MS} ms): "
        f"{asking / (2 * LATENCY_MS):.2f} (goal <= 1.1)"
    )
    began = time.perf_counter()
    for _ in range(20):
        orjson.dumps({"data": {"f1Session": {"laps": rows}}})
    serialize_ms = (time.perf_counter() - began) / 20 * 1000
    print(
        f"a race's {len(rows)} laps uncached: p50 {laps.p50:.1f} ms through the gateway, "
        f"{serialize_ms:.2f} ms for orjson alone ({laps.p50 / serialize_ms:.0f} x)"
    )


if __name__ == "__main__":
    main()
