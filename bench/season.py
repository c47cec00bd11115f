"""The season query against the OpenF1 emulator at 20 ms latency, batching on vs off.

Run: `python bench/season.py [--requests N]`. Prints upstream requests per query, p50/p99
latency and requests/s at concurrency 1 and 16, both variants side by side from one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emulators, gateway_process, run_load

SEASON_QUERY = (
    "{ meetings(filter:{year:{eq:2023}}) { sessions { sessionName meeting { meetingName } } } }"
)
LATENCY_MS = 20
# Meetings, then their sessions: two sequential upstream calls. The batched gateway also
# overlaps them (sessions filtered like the meetings), so it can beat this figure.
CRITICAL_PATH_MS = 2 * LATENCY_MS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200, help="queries per measurement")
    args = parser.parse_args()

    rows: list[tuple[str, int, float, float, float, float, int]] = []
    with emulators() as sandbox:
        sandbox.control("openf1", "faults", {"latency_ms": LATENCY_MS})
        for label, batching in (("batched", "true"), ("unbatched", "false")):
            # No cross-request cache: every query must reach the emulator (bench/cache.py
            # measures the cache).
            env = {**sandbox.env, "DATALOADER_BATCHING": batching, "CACHE_URL": "none"}
            with gateway_process(env) as url:
                run_load(url, SEASON_QUERY, concurrency=4, requests=8)  # warm-up
                for concurrency in (1, 16):
                    before = sandbox.control("openf1", "stats")["requests"]
                    count = args.requests if concurrency == 16 else max(20, args.requests // 4)
                    result = run_load(url, SEASON_QUERY, concurrency=concurrency, requests=count)
                    upstream = sandbox.control("openf1", "stats")["requests"] - before
                    rows.append(
                        (
                            label,
                            concurrency,
                            upstream / count,
                            result.p50,
                            result.percentile(0.99),
                            result.rps,
                            result.errors,
                        )
                    )

    print(f"season query, OpenF1 emulator at {LATENCY_MS} ms, critical path {CRITICAL_PATH_MS} ms")
    header = f"{'variant':<10} {'conc':>4} {'upstream/q':>10} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{header} {'req/s':>8} {'errors':>6}")
    for label, conc, per_query, p50, p99, rps, errors in rows:
        print(
            f"{label:<10} {conc:>4} {per_query:>10.1f} {p50:>8.1f} {p99:>8.1f} "
            f"{rps:>8.1f} {errors:>6}"
        )
    batched_p50 = next(r[3] for r in rows if r[0] == "batched" and r[1] == 1)
    ratio = batched_p50 / CRITICAL_PATH_MS
    verdict = "meets" if ratio <= 1.10 else "misses"
    print(f"batched p50 at concurrency 1 = {ratio:.2f} x critical path ({verdict} the 1.10 target)")


if __name__ == "__main__":
    main()
