"""Schedule import: `createSessions` against one `createSession` per request, at Guidebook's
latency; and what Guidebook webhooks save against TTL polling over a day of edits.

Run: `python bench/guidebook_import.py`. Prints, from one run against the emulators with
every Guidebook request delayed by `LATENCY_MS`: sessions per second imported both ways
(and their ratio), then the upstream requests a day of schedule reads costs with the cache
refreshed every `cache_ttl_guidebook_seconds` against a long TTL dropped by webhooks.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emulators, gateway_process

from sessiongraph.auth import token_hash

LATENCY_MS = 50
SESSIONS = 200
GUIDE = 58377
TOKEN = "bench-token"
CREATE = """mutation ($input: CreateSessionInput!) {
  createSession(input: $input) { session { guidebookId } userErrors { message } } }"""
BULK = """mutation ($sessions: [CreateSessionInput!]!) {
  createSessions(input: {sessions: $sessions}) { results { session { guidebookId } } } }"""
SCHEDULE = """query ($g: Int!) { guide(id: $g) { name scheduleTracks { name }
  sessions(first: 100) { edges { node { name startTime locations { name } } } } } }"""
# A conference day in Builder: the schedule is read all day; organisers edit it now and then.
DAY_SECONDS = 86_400
EDITS_PER_DAY = 40
POLL_TTL_SECONDS = 30


def items(prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "guideId": GUIDE,
            "name": f"{prefix} {n}",
            "startTime": f"2027-06-02T{8 + n % 10:02d}:00:00Z",
        }
        for n in range(SESSIONS)
    ]


def main() -> None:
    client = httpx.Client(timeout=600, headers={"Authorization": f"Bearer {TOKEN}"})
    with emulators() as sandbox:
        sandbox.control("guidebook", "faults", {"latency_ms": LATENCY_MS})
        env = {**sandbox.env, "API_TOKEN_HASHES": token_hash(TOKEN), "CACHE_URL": "none"}
        with gateway_process(env) as url:
            began = time.perf_counter()
            for item in items("One by one"):
                answer = client.post(
                    url + "/graphql", json={"query": CREATE, "variables": {"input": item}}
                )
                answer.raise_for_status()
            single = SESSIONS / (time.perf_counter() - began)
            began = time.perf_counter()
            answer = client.post(
                url + "/graphql", json={"query": BULK, "variables": {"sessions": items("Bulk")}}
            )
            answer.raise_for_status()
            created = answer.json()["data"]["createSessions"]["results"]
            assert all(r["session"] for r in created), answer.text[:500]
            bulk = SESSIONS / (time.perf_counter() - began)
        sandbox.control("guidebook", "faults", {})
        with gateway_process({**env, "CACHE_URL": "memory://"}) as url:
            before = sandbox.control("guidebook", "stats")["requests"]
            client.post(url + "/graphql", json={"query": SCHEDULE, "variables": {"g": GUIDE}})
            cold = sandbox.control("guidebook", "stats")["requests"] - before
    print(f"createSessions at {LATENCY_MS} ms upstream latency, {SESSIONS} sessions")
    print(f"  one createSession per request: {single:7.1f} sessions/s")
    print(f"  createSessions:                {bulk:7.1f} sessions/s  ({bulk / single:.1f} x)")
    polling = cold * DAY_SECONDS // POLL_TTL_SECONDS
    webhooks = cold * (1 + EDITS_PER_DAY)
    print(f"a day of schedule reads ({cold} upstream requests per refresh, {EDITS_PER_DAY} edits):")
    print(f"  TTL polling every {POLL_TTL_SECONDS} s:   {polling:>7} upstream requests")
    print(f"  webhooks, a long TTL:       {webhooks:>7} upstream requests")
    print(f"  saved: {polling - webhooks} requests ({polling / webhooks:.0f} x fewer)")


if __name__ == "__main__":
    main()
