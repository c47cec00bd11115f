"""HTTP caching figures for the season query: revalidation by ETag (304 vs 200) and APQ sizes.

Run: `python bench/http_cache.py [--requests N]`. Prints, from one run against the emulators
and a gateway with the memory cache, how many of N GETs sent with `If-None-Match` (the last
ETag) were answered 304 vs executed (200), the bytes sent and received beside N plain GETs,
and the size of a hash-only persisted query (GET URL, POST body) beside the full query's, for
the season query and the longest README example.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emulators, gateway_process

from sessiongraph.playground.examples import EXAMPLES

SEASON_QUERY = (
    "{ meetings(filter: {year: {eq: 2023}}) { meetingName sessions { sessionName dateStart } } }"
)


def compact(value: Any) -> str:
    """JSON as browsers' clients send it (`JSON.stringify`: no spaces)."""
    return json.dumps(value, separators=(",", ":"))


def request_bytes(request: httpx.Request) -> int:
    """An HTTP/1.1 request as sent: request line, headers, blank line, body."""
    line = len(request.method) + 1 + len(request.url.raw_path) + len(b" HTTP/1.1\r\n")
    headers = sum(len(name) + 2 + len(value) + 2 for name, value in request.headers.raw)
    return line + headers + 2 + len(request.content)


def response_bytes(response: httpx.Response) -> int:
    """An HTTP/1.1 answer as received: status line, headers, blank line, body as framed."""
    line = len(f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n")
    headers = sum(len(name) + 2 + len(value) + 2 for name, value in response.headers.raw)
    return line + headers + 2 + response.num_bytes_downloaded


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    sent: int = 0
    received: int = 0
    empty_304_bodies: bool = True
    latencies_ms: dict[int, list[float]] = field(default_factory=dict)

    def add(self, response: httpx.Response, elapsed_ms: float) -> None:
        self.statuses[response.status_code] += 1
        self.sent += request_bytes(response.request)
        self.received += response_bytes(response)
        self.latencies_ms.setdefault(response.status_code, []).append(elapsed_ms)
        if response.status_code == 304 and response.num_bytes_downloaded:
            self.empty_304_bodies = False

    def p50(self, status: int) -> float | None:
        latencies = self.latencies_ms.get(status)
        return statistics.median(latencies) if latencies else None


def timed_get(
    client: httpx.Client, params: dict[str, str], **headers: str
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = client.get("/graphql", params=params, headers=headers)
    return response, (time.perf_counter() - started) * 1000


def revalidation(client: httpx.Client, requests: int) -> tuple[Tally, Tally]:
    """N GETs with `If-None-Match` of the last ETag seen, then N plain GETs for comparison."""
    params = {"query": SEASON_QUERY}
    first = client.get("/graphql", params=params)
    first.raise_for_status()
    etag = first.headers.get("etag")
    print(
        f"  first answer: {first.status_code}, {len(first.content):,} bytes, "
        f"ETag {etag or 'none'}, Cache-Control {first.headers.get('cache-control', 'none')}"
    )
    revalidated = Tally()
    for _ in range(requests):
        headers = {"If-None-Match": etag} if etag else {}
        response, elapsed_ms = timed_get(client, params, **headers)
        revalidated.add(response, elapsed_ms)
        if response.status_code == 200:
            etag = response.headers.get("etag", etag)
    plain = Tally()
    for _ in range(requests):
        response, elapsed_ms = timed_get(client, params)
        plain.add(response, elapsed_ms)
    return revalidated, plain


def print_revalidation(revalidated: Tally, plain: Tally, upstream: int) -> None:
    counts = revalidated.statuses
    others = sum(n for status, n in counts.items() if status not in (200, 304))
    print(
        f"  with If-None-Match: answered 304 {counts[304]}, executed (200) {counts[200]}, "
        f"other {others}; 304 bodies empty: {'yes' if revalidated.empty_304_bodies else 'NO'}"
    )
    print(f"    bytes sent {revalidated.sent:>10,}  received {revalidated.received:>10,}")
    print(f"  plain GETs:         executed (200) {plain.statuses[200]}")
    print(f"    bytes sent {plain.sent:>10,}  received {plain.received:>10,}")
    both_ways = (revalidated.sent + revalidated.received) / (plain.sent + plain.received)
    print(
        f"  received with / without revalidation = {revalidated.received / plain.received:.3f}; "
        f"both ways = {both_ways:.3f}"
    )
    p304, p200 = revalidated.p50(304), plain.p50(200)
    if p304 is not None and p200 is not None:
        print(f"  p50 latency 304 / 200 = {p304 / p200:.2f}")
    print(f"  upstream requests, the first (cold) answer included: {upstream}")


def hashed_params(query: str) -> dict[str, str]:
    sha = hashlib.sha256(query.encode()).hexdigest()
    return {"extensions": compact({"persistedQuery": {"version": 1, "sha256Hash": sha}})}


def print_sizes(client: httpx.Client, label: str, query: str) -> None:
    """A hash-only request's size beside the full query's, as GET URL and as POST body."""
    hashed = hashed_params(query)
    full_get = client.build_request("GET", "/graphql", params={"query": query})
    hash_get = client.build_request("GET", "/graphql", params=hashed)
    full_url, hash_url = len(full_get.url.raw_path), len(hash_get.url.raw_path)
    full_body = len(compact({"query": query}).encode())
    hash_body = len(compact({"extensions": json.loads(hashed["extensions"])}).encode())
    print(
        f"  {label} ({len(query)} chars): GET path+query {full_url} -> {hash_url} "
        f"({hash_url / full_url:.2f} x), POST body {full_body} -> {hash_body} bytes "
        f"({hash_body / full_body:.2f} x)"
    )


def persisted_queries(client: httpx.Client) -> None:
    """APQ request sizes, and the gateway's answers to the hash-only season query."""
    print("persisted queries (APQ): full query -> hash only")
    print_sizes(client, "season query", SEASON_QUERY)
    longest = max((example.query for example in EXAMPLES), key=len)
    print_sizes(client, "longest README example", longest)
    hashed = hashed_params(SEASON_QUERY)
    extensions = hashed["extensions"]
    miss = client.get("/graphql", params=hashed)
    miss_code = (miss.json().get("errors") or [{}])[0].get("extensions", {}).get("code")
    register = client.post(
        "/graphql", json={"query": SEASON_QUERY, "extensions": json.loads(extensions)}
    )
    hit = client.get("/graphql", params=hashed)
    hit_errors = hit.json().get("errors") if hit.status_code == 200 else None
    print(
        f"  unknown hash: {miss.status_code} {miss_code}; register (POST with query): "
        f"{register.status_code}; hash-only GET then: {hit.status_code}"
        f"{', errors' if hit_errors else ''}"
    )
    etag = hit.headers.get("etag")
    if etag:
        again = client.get("/graphql", params=hashed, headers={"If-None-Match": etag})
        print(
            f"  hash-only GET with If-None-Match: {again.status_code}, "
            f"{response_bytes(again):,} bytes received vs {response_bytes(hit):,}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200, help="requests per loop")
    args = parser.parse_args()
    with emulators() as sandbox:

        def upstream() -> int:
            return int(sandbox.control("openf1", "stats")["requests"])

        env = {**sandbox.env, "CACHE_URL": "memory://"}
        with gateway_process(env) as url, httpx.Client(base_url=url, timeout=30) as client:
            print(f"season query over GET, {args.requests} requests per loop, memory cache")
            before = upstream()
            revalidated, plain = revalidation(client, args.requests)
            print_revalidation(revalidated, plain, upstream() - before)
            persisted_queries(client)


if __name__ == "__main__":
    main()
