"""Faults in every upstream under concurrent load: always coded errors, never a 5xx or a leak."""

from __future__ import annotations

import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests._servers import Gateway, Sandbox
from tests.schema.test_guidebook import BEARER, CDC, CREATE, KEY, new_session, upstream_sessions

MIXED = f"""query Mixed {{
  meetings(filter: {{year: {{eq: 2024}}}}) {{ meetingName sessions {{ sessionName }} }}
  guidebookSessions(guideId: {CDC}, first: 30) {{
    edges {{ node {{ name scheduleTracks {{ name }} }} }}
  }}
  connections {{ name sessions(first: 5) {{ edges {{ node {{ key laps {{ number }} }} }} }} }}
}}"""

FAULTS: list[dict[str, Any]] = [
    {"error_rate": 0.5, "error_status": 503},
    {"error_rate": 0.5, "error_status": 502},
    {"drop_rate": 0.4},
    {"error_rate": 0.6, "error_status": 429},
    {"error_rate": 0.5, "error_status": 429, "retry_after": 0.05},
    {"latency_ms": 1500},
    {"body_fault": "malformed", "body_fault_rate": 0.5},
    {"body_fault": "truncated", "body_fault_rate": 0.5},
]
UPSTREAM_CODES = {
    "UPSTREAM_UNAVAILABLE",
    "UPSTREAM_TIMEOUT",
    "UPSTREAM_RATE_LIMITED",
    "UPSTREAM_AUTH_FAILED",
    "UPSTREAM_REJECTED",
}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def burst(gateway: Gateway, count: int = 24) -> list[Any]:
    with ThreadPoolExecutor(12) as pool:
        return list(pool.map(lambda _: gateway.post({"query": MIXED}), range(count)))


def check(responses: list[Any]) -> list[str]:
    """Every response is a 200 GraphQL answer; every error is an upstream's, coded, at a path.

    Returns the errors as `upstream:code` strings.
    """
    errors: list[str] = []
    for response in responses:
        assert response.status_code == 200, response.text
        body = response.json()
        assert "data" in body
        for error in body.get("errors", ()):
            errors.append(f"{error['extensions']['upstream']}:{error['extensions']['code']}")
            assert error["extensions"]["code"] in UPSTREAM_CODES, error
            assert error["extensions"]["upstream"] in ("openf1", "guidebook", "sqlrace"), error
            assert error["path"], error
    return errors


@pytest.fixture
def loaded_gateway(make_gateway: Any) -> Gateway:
    gateway: Gateway = make_gateway(
        # Generous enough for a loaded 2-core CI machine, shorter than the latency fault.
        upstream_timeout_seconds=1.0,
        retry_attempts=2,
        retry_budget_seconds=2,
    )
    return gateway


@pytest.mark.parametrize("faults", FAULTS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_faults_under_load_are_coded(
    loaded_gateway: Gateway, sandbox: Sandbox, faults: dict[str, Any]
) -> None:
    assert check(burst(loaded_gateway, 4)) == []
    for name in ("openf1", "guidebook", "sqlrace"):
        sandbox.faults(name, **faults)
    errors = check(burst(loaded_gateway))
    # Retries absorb some faults, but at these rates some must show as coded errors.
    assert errors
    for name in ("openf1", "guidebook", "sqlrace"):
        sandbox.faults(name)


def test_memory_and_connections_return_to_baseline(
    loaded_gateway: Gateway, sandbox: Sandbox
) -> None:
    check(burst(loaded_gateway, 48))
    fds, rss = open_fds(), rss_mib()
    for faults in FAULTS:
        for name in ("openf1", "guidebook", "sqlrace"):
            sandbox.faults(name, **faults)
        check(burst(loaded_gateway))
    for name in ("openf1", "guidebook", "sqlrace"):
        sandbox.faults(name)
    # The fault rounds opened breakers; this test is about what the faults leave behind.
    loaded_gateway.reset_resilience()
    assert check(burst(loaded_gateway, 48)) == []
    assert open_fds() <= fds + 16
    assert rss_mib() < rss + 64


def test_lost_create_answers_never_duplicate_under_load(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(upstream_timeout_seconds=2)
    sandbox.faults("guidebook", drop_rate=0.5, drop_phase="after", methods=["POST"])
    import_ids = [f"reliability-{uuid.uuid4()}" for _ in range(12)]

    def create(import_id: str) -> Any:
        variables = {"input": new_session(importId=import_id, name=f"Load {import_id[-6:]}")}
        return gateway.post({"query": CREATE, "variables": variables}, **BEARER)

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(create, import_ids))
    sandbox.faults("guidebook")
    for response in responses:
        assert response.status_code == 200
    for import_id in import_ids:
        found = upstream_sessions(sandbox, import_id=import_id)
        assert found["count"] <= 1, import_id
    created = [r.json()["data"]["createSession"] for r in responses]
    succeeded = [c for c in created if c and c["session"]]
    assert all(
        upstream_sessions(sandbox, import_id=c["session"]["importId"])["count"] == 1
        for c in succeeded
    )
    posts = sandbox.stats("guidebook")["by_method_path"]["POST /open-api/v1/sessions/"]
    assert posts <= 2 * len(import_ids)  # at most one resend, only after a proven absence


def test_no_secrets_and_no_tracebacks_in_logs(
    make_gateway: Any, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = make_gateway(log_level="debug", openf1_username="sandbox", openf1_password="sandbox")
    gateway.post({"query": MIXED})
    gateway.post({"query": CREATE, "variables": {"input": new_session()}}, **BEARER)
    gateway.post({"query": "{ meetings { nope } }"})
    gateway.post({"query": "{ meetings {"})
    sandbox.faults("guidebook", error_rate=1.0, error_status=401)
    gateway.post({"query": MIXED})
    sandbox.faults("guidebook")
    text = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    for secret in (KEY, BEARER["Authorization"], "test-mutation-token", "JWT ", "Bearer "):
        assert secret not in text, secret
    assert "password" not in text.lower()
    client_mistakes = [r for r in caplog.records if r.name == "sessiongraph.graphql"]
    assert client_mistakes
    assert all(r.levelno <= logging.INFO and r.exc_info is None for r in client_mistakes)
