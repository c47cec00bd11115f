"""Background-thread servers for tests: the emulators and the gateway on real loopback ports."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import httpx
import uvicorn

from sessiongraph.app import create_app
from sessiongraph.auth import token_hash
from sessiongraph.config import Settings
from sessiongraph.providers._resilience import CircuitBreaker, RetryBudget
from sessiongraph.sandbox import RunningSandbox, start_sandbox

T = TypeVar("T")

# The bearer token every test gateway accepts for mutations (its hash is configured).
MUTATION_TOKEN = "test-mutation-token"


class LoopThread:
    """An event loop running in a daemon thread, for servers the tests talk to over HTTP."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, factory: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        async def call() -> T:
            return await factory()

        future: Future[T] = asyncio.run_coroutine_threadsafe(call(), self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Sandbox:
    """The three emulators, with helpers for their `/__sandbox/` control endpoints."""

    def __init__(self) -> None:
        self._thread = LoopThread("sandbox")
        self.running: RunningSandbox = self._thread.run(start_sandbox)
        self.http = httpx.Client(timeout=10)

    @property
    def env(self) -> dict[str, str]:
        return dict(self.running.gateway_env)

    def base_url(self, name: str) -> str:
        return self.running.base_urls[name]

    def root(self, name: str) -> str:
        return self.running.roots[name]

    def stats(self, name: str) -> dict[str, Any]:
        response = self.http.get(self.root(name) + "/__sandbox/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def requests(self, name: str) -> int:
        return int(self.stats(name)["requests"])

    def reset(self, *names: str) -> None:
        for name in names or tuple(self.running.roots):
            self.http.post(self.root(name) + "/__sandbox/reset").raise_for_status()

    def faults(self, name: str, **faults: Any) -> None:
        self.http.post(self.root(name) + "/__sandbox/faults", json=faults).raise_for_status()

    def close(self) -> None:
        self.http.close()
        self._thread.run(self.running.stop)
        self._thread.close()


class Gateway:
    """The sessiongraph app under uvicorn on a free loopback port, in its own thread."""

    def __init__(self, settings: Settings, *, http: str = "auto") -> None:
        """`http`: uvicorn's HTTP parser (`auto` picks httptools when installed, else h11)."""
        self.settings = settings
        self.app = create_app(settings)
        self._thread = LoopThread("gateway")
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="on", loop="asyncio", http=http
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.run_coroutine_threadsafe(
            self._server.serve(sockets=[self._sock]), self._thread.loop
        )
        deadline = time.monotonic() + 15
        while not self._server.started:
            if self._serving.done() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def post(self, body: Any, **headers: str) -> httpx.Response:
        return self.http.post("/graphql", json=body, headers=headers)

    def query(
        self, query: str, variables: dict[str, Any] | None = None, **headers: str
    ) -> dict[str, Any]:
        """POST a GraphQL request; asserts the HTTP layer answered 200 with JSON."""
        response = self.post({"query": query, "variables": variables or {}}, **headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def reset_resilience(self) -> None:
        """Forget failures earlier tests caused, so no breaker is left open across tests (and no
        Guidebook quota spent)."""
        for client in self.app.state.providers.clients:
            client.breaker = CircuitBreaker()
            client.retry_budget = RetryBudget()
        # The emulator's daily budget starts again at each reset; so does this process's count.
        quota = self.app.state.providers.guidebook_quota
        if quota is not None:
            quota.reset()

    def close(self) -> None:
        self.http.close()
        self._server.should_exit = True
        self._serving.result(15)
        self._thread.close()
        self._sock.close()


class CuttableLink:
    """A TCP link to a local port from a port of its own, which a test cuts (open connections
    drop, new ones are closed at once) and restores, as a network partition would."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._cut = False
        self._transports: set[asyncio.BaseTransport] = set()
        self._thread = LoopThread("cuttable link")
        self._server = self._thread.run(lambda: asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._target_port
            )
        except OSError:
            writer.transport.abort()
            return
        ends = {writer.transport, upstream_writer.transport}
        self._transports |= ends
        await asyncio.gather(
            _pump(reader, upstream_writer), _pump(upstream_reader, writer), return_exceptions=True
        )
        self._transports -= ends

    async def _cut_all(self) -> None:
        self._cut = True
        for transport in list(self._transports):
            transport.abort()  # type: ignore[attr-defined]

    def cut(self) -> None:
        self._thread.run(self._cut_all)

    def restore(self) -> None:
        async def restore() -> None:
            self._cut = False

        self._thread.run(restore)

    def close(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._cut_all()
            await self._server.wait_closed()
            await asyncio.sleep(0.1)  # the aborted transports' sockets close on the next turns

        self._thread.run(close)
        self._thread.close()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    finally:
        sink.transport.abort()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, child: subprocess.Popen[Any], seconds: float = 10) -> None:
    """Returns once something listens on `port`; kills `child` and raises if nothing does."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                child.kill()
                raise
            time.sleep(0.05)


def sandbox_settings(sandbox: Sandbox, **overrides: Any) -> Settings:
    values: dict[str, Any] = {key.lower(): value for key, value in sandbox.env.items()}
    # No cross-request cache unless a test asks: emulator resets must be seen at once.
    values.update(sandbox=True, log_format="text", cache_url="none")
    # Most tests check how queries reach OpenF1; the catalogue's own tests turn it on.
    values.update(openf1_catalogue=False)
    values.update(api_token_hashes=[token_hash(MUTATION_TOKEN)])
    values.update(overrides)
    return Settings(**values)
