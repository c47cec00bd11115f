"""How a polling feed rides out failed polls: one policy for every upstream's poller."""

from __future__ import annotations

import logging
from enum import Enum

from ..errors import UpstreamAuthFailed, UpstreamError, UpstreamNotConfigured, UpstreamRateLimited

__all__ = ["MAX_POLL_FAILURES", "PollFailures", "RateLimits"]

logger = logging.getLogger("sessiongraph.live")

# Polls that fail in a row (5xx, timeouts, dropped connections) before the feed ends and its
# subscribers are told with the coded error; fewer are ridden out, the next poll fills the gap.
MAX_POLL_FAILURES = 5


class RateLimits(Enum):
    """What a 429 means to a poller: a moment's limit to wait out (OpenF1's per-second and
    per-minute tiers), a spent quota that ends the feed (Guidebook's daily one), or a failure
    like any other."""

    RIDE_OUT = "ride out"
    END = "end"
    COUNT = "count"


class PollFailures:
    """Consecutive failed polls of one feed. Credentials refused or an upstream not configured
    end it at once (no later poll can succeed); the rest are ridden out up to the limit."""

    def __init__(self, rate_limits: RateLimits = RateLimits.COUNT) -> None:
        self.rate_limits = rate_limits
        self.count = 0

    def succeeded(self) -> None:
        self.count = 0

    def failed(self, exc: UpstreamError) -> None:
        """Raises `exc` when this failure ends the feed; else returns to poll again."""
        if isinstance(exc, UpstreamAuthFailed | UpstreamNotConfigured):
            raise exc
        if isinstance(exc, UpstreamRateLimited):
            if self.rate_limits is RateLimits.END:
                raise exc
            if self.rate_limits is RateLimits.RIDE_OUT:
                self._again(exc)
                return
        self.count += 1
        if self.count >= MAX_POLL_FAILURES:
            raise exc
        self._again(exc)

    def _again(self, exc: UpstreamError) -> None:
        logger.info(
            "live poll failed; trying again", extra={"error": exc.code, "failures": self.count}
        )
