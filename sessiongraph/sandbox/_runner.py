"""Starts the sandbox emulators on loopback ports and reports where they listen."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from dataclasses import dataclass, field

from aiohttp import web

from . import guidebook, openf1, sqlrace
from ._spec import EmulatorSpec

__all__ = ["EMULATORS", "EmulatorSpec", "RunningSandbox", "start_sandbox"]


EMULATORS: tuple[EmulatorSpec, ...] = (openf1.SPEC, sqlrace.SPEC, guidebook.SPEC)


@dataclass
class RunningSandbox:
    """Emulators serving on loopback; `stop()` shuts them down."""

    base_urls: dict[str, str] = field(default_factory=dict)
    roots: dict[str, str] = field(default_factory=dict)
    gateway_env: dict[str, str] = field(default_factory=dict)
    _runners: list[web.AppRunner] = field(default_factory=list)

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()


def _free_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


async def start_sandbox(
    host: str = "127.0.0.1", only: tuple[str, ...] | None = None
) -> RunningSandbox:
    sandbox = RunningSandbox()
    for spec in EMULATORS:
        if only is not None and spec.name not in only:
            continue
        runner = web.AppRunner(spec.create_app(), access_log=None, handle_signals=False)
        await runner.setup()
        sock = _free_socket(host)
        site = web.SockSite(runner, sock)
        await site.start()
        port = sock.getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        root = f"http://{shown_host}:{port}"
        sandbox._runners.append(runner)
        sandbox.roots[spec.name] = root
        sandbox.base_urls[spec.name] = root + spec.base_path
        sandbox.gateway_env.update(spec.gateway_env(root))
    return sandbox


async def serve_forever(host: str, as_json: bool, stop_on_stdin_eof: bool = False) -> None:
    sandbox = await start_sandbox(host)
    if as_json:
        print(json.dumps({"base_urls": sandbox.base_urls, "env": sandbox.gateway_env}), flush=True)
    else:
        for name, url in sandbox.base_urls.items():
            print(f"{name:<10} {url}", flush=True)
        print(f"{'control':<10} <root>/__sandbox/stats | reset | faults", flush=True)
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
