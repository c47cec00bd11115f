"""Benchmark plumbing: emulators and gateways in their own processes, and a load generator."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = [
    "Emulators",
    "LoadResult",
    "emulators",
    "gateway_process",
    "redis_server",
    "rss_mib",
    "run_load",
]


@dataclass
class Emulators:
    env: dict[str, str]
    base_urls: dict[str, str]

    def root(self, name: str) -> str:
        url = self.base_urls[name]
        return url.split("/", 3)[0] + "//" + url.split("/", 3)[2]

    def control(self, name: str, action: str, body: dict[str, Any] | None = None) -> Any:
        async def call() -> Any:
            async with aiohttp.ClientSession() as session:
                url = f"{self.root(name)}/__sandbox/{action}"
                method = "GET" if action == "stats" else "POST"
                async with session.request(method, url, json=body) as response:
                    response.raise_for_status()
                    return await response.json()

        return asyncio.run(call())


@contextmanager
def emulators() -> Iterator[Emulators]:
    child = subprocess.Popen(
        [sys.executable, "-m", "sessiongraph.sandbox", "--json", "--stop-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        started = json.loads(child.stdout.readline())
        yield Emulators(env=started["env"], base_urls=started["base_urls"])
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)


# Base URL → pid of the gateway process serving it (for memory figures).
gateway_pids: dict[str, int] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free port; yields its URL."""
    port = _free_port()
    child = subprocess.Popen(  # noqa: S603
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],  # noqa: S607
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, child)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        child.terminate()
        child.wait(10)


def _wait_for_port(port: int, child: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError(f"nothing listens on port {port}") from None
            time.sleep(0.05)


def rss_mib(pid: int, *, children: bool = False) -> float:
    """Resident memory of a process (Linux); with `children`, of it and its child processes
    (uvicorn's workers under its supervisor)."""
    pids = [pid]
    if children:
        with open(f"/proc/{pid}/task/{pid}/children") as listed:
            pids += [int(child) for child in listed.read().split()]
    total = 0.0
    for one in pids:
        with open(f"/proc/{one}/status") as status:
            total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return total / 1024


@contextmanager
def gateway_process(env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """A gateway as `sessiongraph serve` runs it, in a child process; yields its base URL."""
    port = _free_port()
    child_env = {**os.environ, **{f"SESSIONGRAPH_{k}": v for k, v in env.items()}}
    child_env.setdefault("SESSIONGRAPH_LOG_LEVEL", "warning")
    child = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "sessiongraph",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=child_env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_port(port, child)
        gateway_pids[url] = child.pid
        yield url
    finally:
        child.terminate()
        child.wait(15)


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)


def run_load(
    url: str, query: str, *, concurrency: int, requests: int, path: str = "/graphql"
) -> LoadResult:
    """Sends `requests` POSTs of `query` from `concurrency` workers; counts GraphQL errors."""

    async def main() -> LoadResult:
        latencies: list[float] = []
        errors = 0
        remaining = requests
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                nonlocal remaining, errors
                while remaining > 0:
                    remaining -= 1
                    started = time.perf_counter()
                    async with session.post(url + path, json={"query": query}) as resp:
                        body = await resp.json()
                    latencies.append((time.perf_counter() - started) * 1000)
                    if resp.status != 200 or body.get("errors"):
                        errors += 1

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return LoadResult(requests, errors, time.perf_counter() - began, latencies)

    return asyncio.run(main())
