"""Cross-request cache figures against the emulators at 20 ms latency, printed side by side.

Run: `python bench/cache.py [--requests N] [--memory-requests N]`. Prints the season query's
rate cold (no cache) vs warm (memory cache) at concurrency 16, the upstream requests that
1,000 identical concurrent queries cost, 1 vs 2 workers sharing Redis, and the gateway's
memory before and after many uncached requests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    emulators,
    gateway_pids,
    gateway_process,
    redis_server,
    rss_mib,
    run_load,
)

SEASON_QUERY = (
    "{ meetings(filter:{year:{eq:2023}}) { sessions { sessionName meeting { meetingName } } } }"
)
SMALL_QUERY = "{ meeting(key: 1216) { meetingName sessions { sessionName } } }"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--memory-requests", type=int, default=50_000)
    args = parser.parse_args()
    with emulators() as sandbox:
        sandbox.control("openf1", "faults", {"latency_ms": 20})

        def upstream() -> int:
            return int(sandbox.control("openf1", "stats")["requests"])

        print("season query, OpenF1 emulator at 20 ms, concurrency 16")
        rates: dict[str, float] = {}
        for label, cache_url in (("cold (CACHE_URL=none)", "none"), ("warm (memory)", "memory://")):
            with gateway_process({**sandbox.env, "CACHE_URL": cache_url}) as url:
                run_load(url, SEASON_QUERY, concurrency=4, requests=8)
                before = upstream()
                result = run_load(url, SEASON_QUERY, concurrency=16, requests=args.requests)
                per_query = (upstream() - before) / args.requests
                rates[label] = result.rps
                print(
                    f"  {label:<22} {result.rps:>8.1f} req/s  p50 {result.p50:>6.1f} ms  "
                    f"upstream/query {per_query:.2f}  errors {result.errors}"
                )
        ratio = rates["warm (memory)"] / rates["cold (CACHE_URL=none)"]
        print(f"  warm / cold = {ratio:.1f} x (goal >= 10 x)")

        with gateway_process({**sandbox.env, "CACHE_URL": "memory://"}) as url:
            before = upstream()
            result = run_load(url, SEASON_QUERY, concurrency=1000, requests=1000)
            print(
                f"1,000 identical concurrent season queries on a cold cache: "
                f"{upstream() - before} upstream requests, {result.errors} errors"
            )

        with redis_server() as redis_url:
            env = {**sandbox.env, "CACHE_URL": redis_url}
            for workers in (1, 2):
                with gateway_process(env, workers=workers) as url:
                    before = upstream()
                    run_load(url, SEASON_QUERY, concurrency=16, requests=32)
                    result = run_load(url, SEASON_QUERY, concurrency=16, requests=args.requests)
                    print(
                        f"redis cache, {workers} worker(s): {result.rps:>8.1f} req/s  "
                        f"p50 {result.p50:>6.1f} ms  upstream requests {upstream() - before}"
                    )

        # No cache here: every request runs the whole path (execution, loaders, upstream I/O).
        with gateway_process({**sandbox.env, "CACHE_URL": "none"}) as url:
            pid = gateway_pids[url]
            run_load(url, SMALL_QUERY, concurrency=16, requests=2000)
            before_mib = rss_mib(pid)
            result = run_load(url, SMALL_QUERY, concurrency=16, requests=args.memory_requests)
            after_mib = rss_mib(pid)
            print(
                f"gateway RSS over {args.memory_requests:,} requests: "
                f"{before_mib:.1f} MiB -> {after_mib:.1f} MiB "
                f"({result.rps:.0f} req/s, {result.errors} errors)"
            )


if __name__ == "__main__":
    main()
