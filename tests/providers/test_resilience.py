"""Circuit breaker and retry budget: unit behaviour and what a client of the gateway sees."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sessiongraph.errors import UpstreamUnavailable
from sessiongraph.providers._http import RetryPolicy, UpstreamClient
from sessiongraph.providers._resilience import BreakerState, CircuitBreaker, RetryBudget
from tests._servers import Sandbox


def test_breaker_opens_on_a_failure_ratio_and_probes_after_a_pause() -> None:
    breaker = CircuitBreaker(min_attempts=4, failure_ratio=0.5, open_seconds=0.05, probes=3)
    for ok in (True, False, True):
        assert breaker.allow()
        breaker.record(ok)
    assert breaker.state is BreakerState.CLOSED
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    time.sleep(0.06)
    assert [breaker.allow() for _ in range(4)] == [True, True, True, False]  # three probes
    breaker.record(True)
    breaker.record(True)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # a finished probe frees its place
    breaker.record(True)
    assert breaker.state is BreakerState.CLOSED


def half_open(probes: int = 3) -> CircuitBreaker:
    breaker = CircuitBreaker(min_attempts=1, open_seconds=0.01, probes=probes)
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    time.sleep(0.02)
    return breaker


def test_one_failed_probe_does_not_reopen() -> None:
    breaker = half_open()
    for ok in (False, True, True, True):
        assert breaker.allow()
        breaker.record(ok)
    assert breaker.state is BreakerState.CLOSED


def test_probes_that_mostly_fail_reopen() -> None:
    breaker = half_open()
    for ok in (False, True, False, False):
        assert breaker.allow()
        breaker.record(ok)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_an_abandoned_probe_only_frees_its_place() -> None:
    breaker = half_open(probes=1)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record(None)  # e.g. cancelled: no verdict
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_a_steady_quarter_of_failed_requests_never_opens_it_with_the_defaults() -> None:
    breaker = CircuitBreaker()
    for index in range(2000):
        assert breaker.allow()
        breaker.record(index % 4 != 3)
    assert breaker.state is BreakerState.CLOSED


async def test_a_request_counts_once_however_often_it_was_retried(
    sandbox: Sandbox,
) -> None:
    # Every attempt fails: four attempts, one outcome. Per attempt it would open at once.
    breaker = CircuitBreaker(min_attempts=2, failure_ratio=0.75)
    client = UpstreamClient(
        "openf1",
        sandbox.base_url("openf1"),
        timeout=5,
        retry=RetryPolicy(attempts=3, base_delay=0.001),
        breaker=breaker,
    )
    sandbox.faults("openf1", error_rate=1.0, error_status=503)
    await client.start()
    try:
        with pytest.raises(UpstreamUnavailable):
            await client.get("meetings", "meeting_key=1216")
        assert client.requests_sent == 4
        assert breaker.state is BreakerState.CLOSED
        sandbox.faults("openf1")
        assert (await client.get("meetings", "meeting_key=1216")).status == 200
        assert breaker.state is BreakerState.CLOSED
    finally:
        await client.close()


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


def test_a_quarter_of_failing_answers_keeps_the_breaker_closed(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway()  # the default breaker and retry settings
    sandbox.faults("guidebook", error_rate=0.25, error_status=503)
    query = "{ guide(id: 58214) { name } guidebookSession(id: 4120337) { name } }"

    def run(_: int) -> Any:
        return gateway.query(query)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(120)))
    sandbox.faults("guidebook")
    breaker = gateway.app.state.providers.guidebook.client.breaker
    assert breaker.state is BreakerState.CLOSED
    reasons = [e["extensions"].get("reason") for r in results for e in r.get("errors", ())]
    assert "CIRCUIT_OPEN" not in reasons
    answered = [r for r in results if "errors" not in r]
    # Retries absorb most failed attempts, as far as the retry budget allows.
    assert len(answered) >= 0.7 * len(results)


@pytest.mark.parametrize("fault", ["truncated", "malformed"])
@pytest.mark.parametrize(
    ("upstream", "query", "expected"),
    [
        ("openf1", "{ meeting(key: 1216) { meetingName } }", {"meetingName": "Belgian Grand Prix"}),
        ("guidebook", "{ guide(id: 58214) { guidebookId } }", {"guidebookId": 58214}),
        ("sqlrace", '{ connection(name: "Simulator") { name } }', {"name": "Simulator"}),
    ],
)
def test_corrupt_bodies_are_never_cached(
    make_gateway: Any, sandbox: Sandbox, upstream: str, query: str, expected: Any, fault: str
) -> None:
    gateway = make_gateway(cache_url="memory", retry_attempts=0)
    sandbox.faults(upstream, body_fault=fault, body_fault_rate=1.0)
    broken = gateway.query(query)
    assert [e["extensions"]["code"] for e in broken["errors"]] == ["UPSTREAM_UNAVAILABLE"]
    sandbox.faults(upstream)
    answered = gateway.query(query)
    assert list(answered["data"].values()) == [expected], answered
