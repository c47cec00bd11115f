"""Emulator control plane shared by every sandbox emulator: request counts and fault injection.

Serves `GET /__sandbox/stats`, `POST /__sandbox/reset` and `POST /__sandbox/faults` beside an
emulator's API, as `design.md` fixes them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiohttp import web

__all__ = ["CONTROL_PREFIX", "Faults", "SandboxControl"]

CONTROL_PREFIX = "/__sandbox/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FaultResponder = Callable[[int, float | None], web.StreamResponse]


@dataclass
class Faults:
    """What the emulator does wrong on purpose; every field has a harmless default."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    drop_rate: float = 0.0
    rate_limit_per_second: float | None = None
    # With the per-second limit, OpenF1's free tier is {"rate_limit_per_second": 3,
    # "rate_limit_per_minute": 30}: sliding windows over arrivals, as a server counts them.
    rate_limit_per_minute: float | None = None
    # Extensions beyond design.md, all optional:
    # `retry_after` is sent with injected 429s; `drop_phase` "after" runs the handler (and so
    # commits a write) before cutting the connection; `methods`/`path_prefix` scope the faults;
    # `body_fault` "malformed" or "truncated" corrupts otherwise good bodies.
    retry_after: float | None = None
    drop_phase: str = "before"
    methods: list[str] | None = None
    path_prefix: str | None = None
    body_fault: str | None = None
    body_fault_rate: float = 0.0

    @classmethod
    def from_json(cls, payload: Any) -> Faults:
        if not isinstance(payload, dict):
            raise ValueError("faults must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(unknown)}")
        faults = cls(**payload)
        if not 0.0 <= faults.error_rate <= 1.0 or not 0.0 <= faults.drop_rate <= 1.0:
            raise ValueError("error_rate and drop_rate must lie in [0, 1]")
        if not 0.0 <= faults.body_fault_rate <= 1.0:
            raise ValueError("body_fault_rate must lie in [0, 1]")
        if faults.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if faults.drop_phase not in ("before", "after"):
            raise ValueError("drop_phase must be 'before' or 'after'")
        if faults.body_fault not in (None, "malformed", "truncated"):
            raise ValueError("body_fault must be null, 'malformed' or 'truncated'")
        if faults.methods is not None:
            faults.methods = [m.upper() for m in faults.methods]
        return faults

    def applies_to(self, request: web.Request) -> bool:
        if self.methods is not None and request.method.upper() not in self.methods:
            return False
        return self.path_prefix is None or request.path.startswith(self.path_prefix)


@dataclass
class SandboxControl:
    """Counts requests and injects faults for one emulator; its middleware wraps the API."""

    fault_responder: FaultResponder
    faults: Faults = field(default_factory=Faults)
    requests: int = 0
    refused: int = 0  # answered 429 by the rate limits
    by_path: Counter[str] = field(default_factory=Counter)
    by_method_path: Counter[str] = field(default_factory=Counter)
    reset_hooks: list[Callable[[], None]] = field(default_factory=list)
    _recent: deque[float] = field(default_factory=deque)
    _random: random.Random = field(default_factory=lambda: random.Random(1234))

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        app.router.add_get(CONTROL_PREFIX + "stats", self._stats)
        app.router.add_post(CONTROL_PREFIX + "reset", self._reset)
        app.router.add_post(CONTROL_PREFIX + "faults", self._set_faults)
        app.router.add_get(CONTROL_PREFIX + "faults", self._get_faults)

    def reset(self) -> None:
        self.faults = Faults()
        self.requests = 0
        self.refused = 0
        self.by_path.clear()
        self.by_method_path.clear()
        self._recent.clear()
        self._random.seed(1234)
        for hook in self.reset_hooks:
            hook()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        self.requests += 1
        self.by_path[request.path] += 1
        self.by_method_path[f"{request.method} {request.path}"] += 1
        faults = self.faults
        if not faults.applies_to(request):
            return await handler(request)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if self._over_rate(faults):
            return self.fault_responder(429, faults.retry_after)
        if faults.drop_rate and self._random.random() < faults.drop_rate:
            if faults.drop_phase == "after":
                await handler(request)
            return self._drop(request)
        if faults.error_rate and self._random.random() < faults.error_rate:
            retry_after = faults.retry_after if faults.error_status == 429 else None
            return self.fault_responder(faults.error_status, retry_after)
        response = await handler(request)
        if faults.body_fault and self._random.random() < faults.body_fault_rate:
            return self._corrupt(response, faults.body_fault)
        return response

    def _over_rate(self, faults: Faults) -> bool:
        """Refused requests do not count: a client that waits gets through."""
        windows = [
            (span, limit)
            for span, limit in (
                (1.0, faults.rate_limit_per_second),
                (60.0, faults.rate_limit_per_minute),
            )
            if limit is not None
        ]
        if not windows:
            return False
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 60.0:
            self._recent.popleft()
        for span, limit in windows:
            if sum(1 for started in self._recent if now - started < span) >= limit:
                self.refused += 1
                return True
        self._recent.append(now)
        return False

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        # The peer is gone; aiohttp discards whatever is written to an aborted transport.
        return web.Response(status=204)

    @staticmethod
    def _corrupt(response: web.StreamResponse, mode: str) -> web.StreamResponse:
        if not isinstance(response, web.Response) or response.body is None:
            return response
        body = bytes(response.body)  # type: ignore[arg-type]
        damaged = body[: max(1, len(body) // 2)] if mode == "truncated" else b"{not json" + body
        return web.Response(
            body=damaged, status=response.status, content_type=response.content_type
        )

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests,
                "rate_limited": self.refused,
                "by_path": dict(self.by_path),
                "by_method_path": dict(self.by_method_path),
            }
        )

    async def _reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults = Faults.from_json(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self._recent.clear()
        return web.json_response(asdict(self.faults))

    async def _get_faults(self, _request: web.Request) -> web.Response:
        return web.json_response(asdict(self.faults))
