"""Shared fixtures: emulators started once per test session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._servers import Sandbox


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
