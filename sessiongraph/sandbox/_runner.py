"""Starts the sandbox emulators on loopback ports and reports where they listen."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import socket
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import guidebook, openf1, sqlrace
from ._spec import EmulatorSpec

__all__ = ["EMULATORS", "EmulatorSpec", "RunningSandbox", "parse_replay", "start_sandbox"]


EMULATORS: tuple[EmulatorSpec, ...] = (openf1.SPEC, sqlrace.SPEC, guidebook.SPEC)


@dataclass
class RunningSandbox:
    """Emulators serving on loopback; `stop()` shuts them down."""

    base_urls: dict[str, str] = field(default_factory=dict)
    roots: dict[str, str] = field(default_factory=dict)
    gateway_env: dict[str, str] = field(default_factory=dict)
    # Companion servers' URLs, e.g. {"openf1_mqtt": "mqtt://127.0.0.1:PORT", "openf1_mqtt_ws": ...}.
    services: dict[str, str] = field(default_factory=dict)
    apps: dict[str, web.Application] = field(default_factory=dict)
    _runners: list[web.AppRunner] = field(default_factory=list)
    _companions: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def stop(self) -> None:
        await self._companions.aclose()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()


def _free_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def parse_replay(text: str) -> tuple[int, float]:
    """`SESSION_KEY[@SPEED]` (e.g. `9839@10`) as (session_key, speed); speed defaults to 1."""
    key_text, at, speed_text = text.partition("@")
    try:
        session_key = int(key_text)
        speed = float(speed_text) if at else 1.0
    except ValueError:
        raise ValueError(f"expected SESSION_KEY[@SPEED], e.g. 9839@10, got {text!r}") from None
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"SPEED must be a positive number, got {speed_text!r}")
    return session_key, speed


async def start_sandbox(
    host: str = "127.0.0.1",
    only: tuple[str, ...] | None = None,
    *,
    replay: tuple[int, float] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunningSandbox:
    """Serve the emulators (those named in `only`, or all) and their companion servers.

    With `replay=(session_key, speed)` the OpenF1 emulator plays that session back as live from
    its start, and `gateway_env` also carries the emulator's account (OPENF1_USERNAME and
    OPENF1_PASSWORD), since a live session answers anonymous clients 401. ValueError when the
    replay cannot start (unknown session, bad speed, OpenF1 not among `only`). `options` are
    keyword arguments of an emulator's `create_app`, by emulator name."""
    if replay is not None and only is not None and "openf1" not in only:
        raise ValueError("a replay needs the openf1 emulator")
    sandbox = RunningSandbox()
    try:
        for spec in EMULATORS:
            if only is not None and spec.name not in only:
                continue
            await _start(sandbox, spec, host, (options or {}).get(spec.name, {}))
        if replay is not None:
            app = sandbox.apps["openf1"]
            session_key, speed = replay
            await openf1.start_replay(app, session_key, speed)
            sandbox.gateway_env.update(openf1.account_env(app))
    except BaseException:
        await sandbox.stop()
        raise
    return sandbox


async def _start(
    sandbox: RunningSandbox, spec: EmulatorSpec, host: str, options: Mapping[str, Any]
) -> None:
    app = spec.create_app(**options)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sandbox._runners.append(runner)
    sock = _free_socket(host)
    site = web.SockSite(runner, sock)
    await site.start()
    port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    root = f"http://{shown_host}:{port}"
    sandbox.apps[spec.name] = app
    sandbox.roots[spec.name] = root
    sandbox.base_urls[spec.name] = root + spec.base_path
    sandbox.gateway_env.update(spec.gateway_env(root))
    for companion in spec.companions:
        service = await sandbox._companions.enter_async_context(companion(app, host))
        sandbox.services.update(service.urls)
        sandbox.gateway_env.update(service.env)


async def serve_forever(
    host: str,
    as_json: bool,
    stop_on_stdin_eof: bool = False,
    replay: tuple[int, float] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    sandbox = await start_sandbox(host, replay=replay, options=options)
    if as_json:
        print(
            json.dumps(
                {
                    "base_urls": sandbox.base_urls,
                    "services": sandbox.services,
                    "env": sandbox.gateway_env,
                }
            ),
            flush=True,
        )
    else:
        for name, url in {**sandbox.base_urls, **sandbox.services}.items():
            print(f"{name:<15} {url}", flush=True)
        print(f"{'control':<15} <root>/__sandbox/stats | reset | faults", flush=True)
        if replay is not None:
            session_key, speed = replay
            print(f"{'replay':<15} session {session_key} at {speed:g}x", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # A parent that started us with a pipe on stdin stops us by closing it, even if it is killed.
    if stop_on_stdin_eof:
        loop.run_in_executor(None, lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)))
    await stop.wait()
    await sandbox.stop()
