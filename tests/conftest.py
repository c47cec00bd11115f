"""Shared fixtures: emulators started once per test session, reset before each test."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests._servers import Gateway, Sandbox, free_port, sandbox_settings, wait_for_port


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[Sandbox]:
    sandbox = Sandbox()
    yield sandbox
    sandbox.close()


@pytest.fixture
def sandbox(sandbox_session: Sandbox) -> Sandbox:
    """The running emulators with counters and faults cleared."""
    sandbox_session.reset()
    return sandbox_session


@pytest.fixture(scope="session")
def gateway_session(sandbox_session: Sandbox) -> Iterator[Gateway]:
    gateway = Gateway(sandbox_settings(sandbox_session))
    yield gateway
    gateway.close()


@pytest.fixture
def gateway(gateway_session: Gateway, sandbox: Sandbox) -> Gateway:
    """The gateway configured for the emulators, which are reset before each test."""
    gateway_session.reset_resilience()
    return gateway_session


@pytest.fixture
def make_gateway(sandbox: Sandbox) -> Iterator[Callable[..., Gateway]]:
    """Builds extra gateways with settings overrides; they stop after the test."""
    started: list[Gateway] = []

    def make(**overrides: Any) -> Gateway:
        gateway = Gateway(sandbox_settings(sandbox, **overrides))
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free port, for the tests that share a cache through it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is needed (Debian: apt-get install redis-server)")
    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port, server)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


CHROMIUM = Path("/usr/bin/chromium")
# As this machine's notes say: without the background-networking flags Chromium keeps trying
# Google's hosts, which a closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Page]:
    """Debian's Chromium, started and stopped here, with a fresh profile."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium.new_page()
        finally:
            chromium.close()
