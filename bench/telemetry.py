"""Large answers: telemetry series through the gateway against the upstream's own time for the
same samples, and the gateway's memory while serving them.

Run: `python bench/telemetry.py`. Prints, from one run against the emulators (cache off): one
driver's whole-race OpenF1 `carData` (~20,000 samples) and all 20 drivers' (~400,000), a SQL
Race `samples` request of 4 parameters at 100 Hz over a session, each beside the time the
upstream takes to send the same rows: as bytes, and as rows decoded by orjson (what a client of
the REST API pays to use them); and the gateway's RSS before, after each, and after three more
SQL Race runs (flat when memory is bounded).
Goals: at most 1.5 x the upstream's time, and at most 1 s for one driver's race.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emulators, gateway_pids, gateway_process, rss_mib

RACE = 9839
CHANNELS = "count date speed rpm nGear throttle brake drs"
ONE = f"{{ f1Session(key: {RACE}) {{ carData(driverNumber: 1) {{ {CHANNELS} }} }} }}"
ALL = f"{{ f1Session(key: {RACE}) {{ drivers {{ driverNumber carData {{ {CHANNELS} }} }} }} }}"


SQLRACE_SESSION = "afb06f38-8708-4115-9328-f12647799f8a"  # an 84-minute race
PARAMETERS = ("vCar:Chassis", "nEngine:Chassis", "NGear:Chassis", "rThrottle:Chassis")
SAMPLES = (
    f'{{ sqlRaceSession(connection: "Season2024", key: "{SQLRACE_SESSION}") {{ '
    f"samples(parameters: {list(PARAMETERS)!r}, frequencyHz: 100) "
    "{ count time channels { parameter values } } } }"
).replace("'", '"')


def best_of(runs: int, action: Callable[[], Any]) -> tuple[float, Any]:
    """The best time of `runs`, after one untimed run: both sides, gateway and upstream, are
    timed warm (a new process's first requests pay page faults and new connections)."""
    action()
    best, result = float("inf"), None
    for _ in range(runs):
        began = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - began)
    return best, result


def main() -> None:
    client = httpx.Client(timeout=300)
    rows: list[tuple[str, int, float, float, float, float]] = []

    def fetched(url: str, headers: dict[str, str] | None = None) -> tuple[float, float]:
        """The upstream's time for the rows as bytes, and as rows a REST client can use."""
        raw, _ = best_of(3, lambda: client.get(url, headers=headers).raise_for_status())
        decoded, _ = best_of(3, lambda: orjson.loads(client.get(url, headers=headers).content))
        return raw, decoded

    with emulators() as sandbox:
        openf1 = sandbox.base_urls["openf1"]
        with gateway_process({**sandbox.env, "CACHE_URL": "none"}) as url:
            pid = gateway_pids[url]
            before = rss_mib(pid)

            def ask(query: str) -> Any:
                # Bytes only: the upstream's time below does not decode its JSON either.
                answer = client.post(url + "/graphql", json={"query": query})
                answer.raise_for_status()
                return answer.content

            listed = orjson.loads(
                ask(f"{{ f1Session(key: {RACE}) {{ drivers {{ driverNumber }} }} }}")
            )
            drivers = [d["driverNumber"] for d in listed["data"]["f1Session"]["drivers"]]
            one = fetched(f"{openf1}/car_data?session_key={RACE}&driver_number=1")
            ours_one, answer = best_of(3, lambda: ask(ONE))
            count = orjson.loads(answer)["data"]["f1Session"]["carData"]["count"]
            rows.append(("carData, one driver's race", count, ours_one, *one, rss_mib(pid)))

            every_driver = [
                fetched(f"{openf1}/car_data?session_key={RACE}&driver_number={number}")
                for number in drivers
            ]
            ours_every, answer = best_of(2, lambda: ask(ALL))
            every = orjson.loads(answer)["data"]["f1Session"]["drivers"]
            total = sum(d["carData"]["count"] for d in every)
            raw_all, decoded_all = (sum(pair) for pair in zip(*every_driver, strict=True))
            label = f"carData, all {len(drivers)} drivers"
            rows.append((label, total, ours_every, raw_all, decoded_all, rss_mib(pid)))
            sqlrace = sandbox.base_urls["sqlrace"]
            token = client.post(
                sqlrace + "/token",
                data={"grant_type": "password", "username": "admin", "password": "admin"},
            ).json()["access_token"]
            ids = ",".join(f"{p}%3BMean" for p in PARAMETERS)
            direct = (
                f"{sqlrace}/api/connections/Season2024/sessions/{SQLRACE_SESSION}/parameters/"
                f"{ids}/100/data?page=0&pageSize=1000000"
            )
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            samples = fetched(direct, headers)
            ours_samples, answer = best_of(2, lambda: ask(SAMPLES))
            count = orjson.loads(answer)["data"]["sqlRaceSession"]["samples"]["count"]
            label = "SQL Race samples, 4 x 100 Hz"
            rows.append((label, count * 4, ours_samples, *samples, rss_mib(pid)))
            # Again: memory that stays flat over repeats is bounded, not accumulating.
            for _ in range(3):
                ask(SAMPLES)
            after = rss_mib(pid)
    print("large answers, cache off (best of several runs); upstream as bytes, and as decoded rows")
    print(
        f"{'request':<30} {'samples':>9} {'gateway s':>10} {'bytes s':>8} {'ratio':>6}"
        f" {'rows s':>7} {'ratio':>6} {'RSS MiB':>8}"
    )
    for label, samples, ours, raw, decoded, rss in rows:
        print(
            f"{label:<30} {samples:>9} {ours:>10.3f} {raw:>8.3f} {ours / raw:>6.2f}"
            f" {decoded:>7.3f} {ours / decoded:>6.2f} {rss:>8.0f}"
        )
    print(f"gateway RSS: {before:.0f} MiB before, {after:.0f} MiB after three more SQL Race runs")


if __name__ == "__main__":
    main()
