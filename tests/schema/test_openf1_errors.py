"""Upstream failures become coded GraphQL errors on the fields that needed them."""

from __future__ import annotations

from typing import Any

from tests._servers import Gateway, Sandbox

MEETING = "{ meeting(key: 1216) { meetingName } }"


def only_error(result: dict[str, Any]) -> dict[str, Any]:
    assert result["data"] == {"meeting": None}
    (error,) = result["errors"]
    assert error["path"] == ["meeting"]
    extensions: dict[str, Any] = error["extensions"]
    assert extensions["upstream"] == "openf1"
    return extensions


def test_5xx_is_retried_then_unavailable(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(retry_attempts=2)
    sandbox.faults("openf1", error_rate=1.0, error_status=503)
    extensions = only_error(gateway.query(MEETING))
    assert extensions["code"] == "UPSTREAM_UNAVAILABLE"
    assert extensions["status"] == 503
    assert sandbox.requests("openf1") == 3


def test_a_transient_failure_is_absorbed_by_retries(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(retry_attempts=6)
    sandbox.faults("openf1", error_rate=0.5, error_status=502)
    result = gateway.query("{ meetings(filter: {year: {eq: 2025}}) { meetingKey } }")
    assert "errors" not in result
    assert len(result["data"]["meetings"]) == 25


def test_429_with_a_long_retry_after_is_reported_not_awaited(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    sandbox.faults("openf1", error_rate=1.0, error_status=429, retry_after=120)
    extensions = only_error(gateway.query(MEETING))
    assert extensions["code"] == "UPSTREAM_RATE_LIMITED"
    assert extensions["status"] == 429
    assert extensions["retryAfter"] == 120
    assert sandbox.requests("openf1") == 1


def test_429_with_a_short_retry_after_is_honoured(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(retry_attempts=8)
    sandbox.faults("openf1", error_rate=0.5, error_status=429, retry_after=0.05)
    result = gateway.query(MEETING)
    assert result == {"data": {"meeting": {"meetingName": "Belgian Grand Prix"}}}
    assert sandbox.requests("openf1") >= 1


def test_slow_upstream_times_out_without_retry(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(upstream_timeout_seconds=0.3)
    sandbox.faults("openf1", latency_ms=1500)
    extensions = only_error(gateway.query(MEETING))
    assert extensions["code"] == "UPSTREAM_TIMEOUT"
    assert sandbox.requests("openf1") == 1


def test_dropped_connections_are_retried_then_unavailable(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(retry_attempts=1)
    sandbox.faults("openf1", drop_rate=1.0)
    extensions = only_error(gateway.query(MEETING))
    assert extensions["code"] == "UPSTREAM_UNAVAILABLE"
    assert sandbox.requests("openf1") == 2


def test_session_in_progress_is_an_auth_error(gateway: Gateway, sandbox: Sandbox) -> None:
    sandbox.http.post(
        sandbox.root("openf1") + "/__sandbox/openf1/live", json={"active": True}
    ).raise_for_status()
    extensions = only_error(gateway.query(MEETING))
    assert extensions["code"] == "UPSTREAM_AUTH_FAILED"
    assert extensions["status"] == 401


def test_a_paid_account_token_passes_the_live_gate(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(openf1_username="sandbox", openf1_password="sandbox")
    sandbox.http.post(
        sandbox.root("openf1") + "/__sandbox/openf1/live", json={"active": True}
    ).raise_for_status()
    for _ in range(3):
        assert gateway.query(MEETING) == {
            "data": {"meeting": {"meetingName": "Belgian Grand Prix"}}
        }
    assert sandbox.stats("openf1")["by_path"] == {"/token": 1, "/v1/meetings": 3}


def test_malformed_upstream_json_is_unavailable(gateway: Gateway, sandbox: Sandbox) -> None:
    sandbox.faults("openf1", body_fault="malformed", body_fault_rate=1.0)
    extensions = only_error(gateway.query(MEETING))
    assert extensions["code"] == "UPSTREAM_UNAVAILABLE"


def test_one_failing_field_leaves_its_siblings_intact(gateway: Gateway) -> None:
    result = gateway.query(
        "{ ok: meeting(key: 1216) { meetingName } missing: meeting(key: 1) { meetingName } }"
    )
    assert result["data"] == {"ok": {"meetingName": "Belgian Grand Prix"}, "missing": None}
    assert [e["path"] for e in result["errors"]] == [["missing"]]


def test_failing_sessions_do_not_take_down_their_meetings(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(retry_attempts=0)
    sandbox.faults("openf1", error_rate=1.0, error_status=503, path_prefix="/v1/sessions")
    result = gateway.query(
        '{ meetings(filter: {countryCode: {eq: "BEL"}}) { year sessions { sessionKey } } }'
    )
    assert [m["year"] for m in result["data"]["meetings"]] == [2023, 2024, 2025]
    assert all(m["sessions"] is None for m in result["data"]["meetings"])
    assert {e["extensions"]["code"] for e in result["errors"]} == {"UPSTREAM_UNAVAILABLE"}
    assert all(e["path"][0] == "meetings" for e in result["errors"])
