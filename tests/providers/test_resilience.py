"""Circuit breaker and retry budget: unit behaviour and what a client of the gateway sees."""

from __future__ import annotations

import time
from typing import Any

from sessiongraph.providers._resilience import BreakerState, CircuitBreaker, RetryBudget
from tests._servers import Sandbox


def test_breaker_opens_on_a_failure_ratio_and_probes_after_a_pause() -> None:
    breaker = CircuitBreaker(min_attempts=4, failure_ratio=0.5, open_seconds=0.05)
    for ok in (True, False, True):
        assert breaker.allow()
        breaker.record(ok)
    assert breaker.state is BreakerState.CLOSED
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    time.sleep(0.06)
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record(True)
    assert breaker.state is BreakerState.CLOSED


def test_a_failed_probe_reopens() -> None:
    breaker = CircuitBreaker(min_attempts=1, open_seconds=0.01)
    breaker.record(False)
    time.sleep(0.02)
    assert breaker.allow()
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN


def test_retry_budget_limits_retries_to_a_share_of_requests() -> None:
    budget = RetryBudget(ratio=0.25, min_per_second=0, cap=2)
    assert [budget.withdraw() for _ in range(3)] == [True, True, False]
    for _ in range(4):
        budget.deposit()
    assert budget.withdraw()
    assert not budget.withdraw()


def test_an_open_breaker_fails_fast_without_calling_the_upstream(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(retry_attempts=0, breaker_min_requests=4, breaker_open_seconds=0.5)
    sandbox.faults("openf1", error_rate=1.0, error_status=503)
    query = "{ meeting(key: 1216) { meetingName } }"
    for _ in range(4):
        assert gateway.query(query)["errors"][0]["extensions"]["status"] == 503
    fast = gateway.query(query)["errors"][0]["extensions"]
    assert fast["code"] == "UPSTREAM_UNAVAILABLE"
    assert fast["reason"] == "CIRCUIT_OPEN"
    assert 0 < fast["retryAfter"] <= 0.5
    assert sandbox.requests("openf1") == 4
    sandbox.faults("openf1")
    time.sleep(0.55)
    assert gateway.query(query) == {"data": {"meeting": {"meetingName": "Belgian Grand Prix"}}}
    assert sandbox.requests("openf1") == 5


def test_retries_stop_when_the_budget_is_spent(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(retry_attempts=3, retry_budget_ratio=0, breaker_min_requests=1000)
    sandbox.faults("openf1", error_rate=1.0, error_status=503)
    began = time.monotonic()
    for key in range(1216, 1236):
        gateway.query(f"{{ meeting(key: {key}) {{ meetingName }} }}")
    elapsed = time.monotonic() - began
    # Unbudgeted that is 20 x 4 requests; the budget allows its 10 initial tokens plus one
    # retry per second of refill.
    assert sandbox.requests("openf1") <= 20 + 10 + elapsed + 1
    assert sandbox.requests("openf1") < 20 * 4
