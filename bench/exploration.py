"""A playground user's 36 questions about meetings and sessions, against an OpenF1 emulator
that enforces the free tier (3 requests/s, 30/min, 429 beyond), catalogue on vs off.

Run: `python bench/exploration.py`. Prints, for each variant from one run: answers checked
against the sandbox data, upstream requests, 429s, total and worst wait; then the season
query's p50 at concurrency 1 and 16 without the limits (the catalogue must not slow it).
Goal: all answers right, at most 6 upstream requests, no 429, worst answer at most 1.5 s.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emulators, gateway_process, run_load

DATA = Path(__file__).resolve().parents[1] / "sessiongraph" / "sandbox" / "data" / "openf1"
MEETINGS: list[dict[str, Any]] = json.loads((DATA / "meetings.json").read_text())
SESSIONS: list[dict[str, Any]] = json.loads((DATA / "sessions.json").read_text())
FREE_TIER = {"rate_limit_per_second": 3, "rate_limit_per_minute": 30}
SEASON_QUERY = (
    "{ meetings(filter:{year:{eq:2023}}) { sessions { sessionName meeting { meetingName } } } }"
)

Row = dict[str, Any]
# (question, how to read its keys from the answer, the keys the data says it must have)
Question = tuple[str, Callable[[Any], list[int]], list[int]]


def meeting_keys(rows: list[Row]) -> list[int]:
    return [r["meeting_key"] for r in rows]


def session_keys(rows: list[Row]) -> list[int]:
    return [r["session_key"] for r in rows]


def read(*path: str, key: str) -> Callable[[Any], list[int]]:
    def keys(data: Any) -> list[int]:
        for step in path:
            data = data[step]
        items = data if isinstance(data, list) else [data]
        found = []
        for item in items:
            found.append(item[key])
            for session in item.get("sessions") or ():
                found.append(session["sessionKey"])
        return found

    return keys


def questions() -> list[Question]:
    asked: list[Question] = []
    for year in (2023, 2024, 2025):
        expected = []
        for meeting in (m for m in MEETINGS if m["year"] == year):
            expected.append(meeting["meeting_key"])
            expected += [
                s["session_key"] for s in SESSIONS if s["meeting_key"] == meeting["meeting_key"]
            ]
        asked.append(
            (
                f"{{ meetings(filter: {{year: {{eq: {year}}}}}) "
                "{ meetingKey meetingName sessions { sessionKey sessionName } } }",
                read("meetings", key="meetingKey"),
                expected,
            )
        )
    for name in ("Race", "Qualifying"):
        for year in (2023, 2024, 2025):
            rows = [s for s in SESSIONS if s["year"] == year and s["session_name"] == name]
            asked.append(
                (
                    f"{{ f1Sessions(filter: {{year: {{eq: {year}}}, "
                    f'sessionName: {{eq: "{name}"}}}}) {{ sessionKey dateStart }} }}',
                    read("f1Sessions", key="sessionKey"),
                    session_keys(rows),
                )
            )
    for country in (
        "Italy", "Belgium", "Monaco", "Japan", "Brazil", "Spain", "Austria", "Hungary",
    ):  # fmt: skip
        rows = [m for m in MEETINGS if m["country_name"] == country]
        asked.append(
            (
                f'{{ meetings(filter: {{countryName: {{eq: "{country}"}}}}) '
                "{ meetingKey meetingName year } }",
                read("meetings", key="meetingKey"),
                meeting_keys(rows),
            )
        )
    for meeting in MEETINGS[::12][:6]:
        asked.append(
            (
                f"{{ meeting(key: {meeting['meeting_key']}) "
                "{ meetingKey meetingOfficialName } }",
                read("meeting", key="meetingKey"),
                [meeting["meeting_key"]],
            )
        )
    for session in SESSIONS[::60][:6]:
        asked.append(
            (
                f"{{ f1Session(key: {session['session_key']}) "
                "{ sessionKey sessionName meeting { meetingName } } }",
                read("f1Session", key="sessionKey"),
                [session["session_key"]],
            )
        )
    for start, end in (("2024-07-01", "2024-08-01"), ("2025-03-01", "2025-04-15")):
        rows = [s for s in SESSIONS if f"{start}T00" <= s["date_start"] < f"{end}T00"]
        asked.append(
            (
                f'{{ f1Sessions(filter: {{dateStart: {{gte: "{start}T00:00:00Z", '
                f'lt: "{end}T00:00:00Z"}}}}) {{ sessionKey }} }}',
                read("f1Sessions", key="sessionKey"),
                session_keys(rows),
            )
        )
    for code in ("GBR", "USA", "ITA"):
        rows = [s for s in SESSIONS if s["country_code"] == code and s["session_type"] == "Race"]
        asked.append(
            (
                f'{{ f1Sessions(filter: {{countryCode: {{eq: "{code}"}}, '
                'sessionType: {eq: "Race"}}) { sessionKey circuitShortName } }',
                read("f1Sessions", key="sessionKey"),
                session_keys(rows),
            )
        )
    horizon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    latest = max((s for s in SESSIONS if s["date_start"] <= horizon), key=lambda s: s["date_start"])
    asked.append(
        (
            "{ f1Session(latest: true) { sessionKey } }",
            read("f1Session", key="sessionKey"),
            [latest["session_key"]],
        )
    )
    asked.append(
        (
            "{ meeting(latest: true) { meetingKey } }",
            read("meeting", key="meetingKey"),
            [latest["meeting_key"]],
        )
    )
    return asked


def explore(url: str, asked: list[Question]) -> tuple[int, list[float], list[str]]:
    right, waits, wrong = 0, [], []
    with httpx.Client(timeout=300) as client:
        for query, keys_of, expected in asked:
            started = time.perf_counter()
            answer = client.post(url + "/graphql", json={"query": query}).json()
            waits.append(time.perf_counter() - started)
            found = (
                keys_of(answer["data"]) if answer.get("data") and not answer.get("errors") else None
            )
            if found == expected:
                right += 1
            else:
                wrong.append(f"{query[:70]} -> {str(answer)[:120]}")
    return right, waits, wrong


def main() -> None:
    asked = questions()
    print(f"{len(asked)} questions, OpenF1 emulator enforcing 3 requests/s and 30/min (429 beyond)")
    print(
        f"{'catalogue':<10} {'right':>7} {'upstream':>8} {'429s':>5} {'total s':>8} {'worst s':>8}"
    )
    speeds: list[tuple[str, int, float]] = []
    with emulators() as sandbox:
        for catalogue in ("true", "false"):
            sandbox.control("openf1", "reset")
            sandbox.control("openf1", "faults", FREE_TIER)
            env = {
                **sandbox.env,
                "OPENF1_CATALOGUE": catalogue,
                "OPENF1_RATE_PER_SECOND": "3",
                "OPENF1_RATE_PER_MINUTE": "30",
                "RETRY_BUDGET_SECONDS": "120",
            }
            with gateway_process(env) as url:
                right, waits, wrong = explore(url, asked)
            stats = sandbox.control("openf1", "stats")
            print(
                f"{catalogue:<10} {right:>3}/{len(asked):<3} {stats['requests']:>8} "
                f"{stats['rate_limited']:>5} {sum(waits):>8.1f} {max(waits):>8.2f}"
            )
            for line in wrong:
                print("   wrong:", line)
        sandbox.control("openf1", "reset")
        for catalogue in ("true", "false"):
            env = {**sandbox.env, "OPENF1_CATALOGUE": catalogue, "CACHE_URL": "none"}
            with gateway_process(env) as url:
                run_load(url, SEASON_QUERY, concurrency=4, requests=8)  # warm-up
                for concurrency in (1, 16):
                    result = run_load(url, SEASON_QUERY, concurrency=concurrency, requests=160)
                    speeds.append((catalogue, concurrency, result.p50))
    print("season query, no cache, no limits: p50 ms")
    for catalogue, concurrency, p50 in speeds:
        print(f"  catalogue {catalogue:<5} concurrency {concurrency:>2}: {p50:7.1f}")


if __name__ == "__main__":
    main()
