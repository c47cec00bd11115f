"""One policy for failed polls: counted up to the limit, reset by a success, credentials and
configuration ending a feed at once, rate limits as each upstream means them."""

from __future__ import annotations

import pytest

from sessiongraph.errors import (
    UpstreamAuthFailed,
    UpstreamNotConfigured,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from sessiongraph.live._failures import MAX_POLL_FAILURES, PollFailures, RateLimits


def down() -> UpstreamUnavailable:
    return UpstreamUnavailable("openf1", "503", status=503)


def limited() -> UpstreamRateLimited:
    return UpstreamRateLimited("openf1", "429", retry_after=None)


def test_failures_in_a_row_end_the_feed_and_a_success_resets_them() -> None:
    failures = PollFailures()
    for _ in range(MAX_POLL_FAILURES - 1):
        failures.failed(down())
    failures.succeeded()
    for _ in range(MAX_POLL_FAILURES - 1):
        failures.failed(down())
    with pytest.raises(UpstreamUnavailable):
        failures.failed(down())


@pytest.mark.parametrize("policy", list(RateLimits))
def test_refused_credentials_and_missing_configuration_end_it_at_once(policy: RateLimits) -> None:
    for error in (
        UpstreamAuthFailed("sqlrace", "401", status=401),
        UpstreamNotConfigured("sqlrace", "not configured"),
    ):
        with pytest.raises(type(error)):
            PollFailures(policy).failed(error)


def test_rate_limits_as_each_upstream_means_them() -> None:
    riding = PollFailures(RateLimits.RIDE_OUT)
    for _ in range(MAX_POLL_FAILURES * 3):
        riding.failed(limited())
    assert riding.count == 0
    with pytest.raises(UpstreamRateLimited):
        PollFailures(RateLimits.END).failed(limited())
    counting = PollFailures(RateLimits.COUNT)
    for _ in range(MAX_POLL_FAILURES - 1):
        counting.failed(limited())
    with pytest.raises(UpstreamRateLimited):
        counting.failed(limited())
