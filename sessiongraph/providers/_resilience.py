"""Per-upstream circuit breaker and retry budget, so an outage is met with fast failures."""

from __future__ import annotations

import time
from collections import deque
from enum import Enum

__all__ = ["BreakerState", "CircuitBreaker", "RetryBudget"]


class BreakerState(Enum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Opens when enough recent attempts failed; after a pause lets a few probes through.

    Outcomes are kept for a rolling `window_seconds`; the breaker opens once at least
    `min_attempts` of them exist and `failure_ratio` of them failed.
    """

    def __init__(
        self,
        *,
        window_seconds: float = 30,
        min_attempts: int = 10,
        failure_ratio: float = 0.5,
        open_seconds: float = 15,
        probes: int = 1,
    ) -> None:
        self.window_seconds = window_seconds
        self.min_attempts = min_attempts
        self.failure_ratio = failure_ratio
        self.open_seconds = open_seconds
        self.probes = probes
        self.state = BreakerState.CLOSED
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._opened_at = 0.0
        self._probes_in_flight = 0

    def retry_after(self) -> float:
        return max(0.0, self._opened_at + self.open_seconds - time.monotonic())

    def allow(self) -> bool:
        """Whether an attempt may go out now (and, half-open, count it as a probe)."""
        if self.state is BreakerState.OPEN:
            if self.retry_after() > 0:
                return False
            self.state = BreakerState.HALF_OPEN
            self._probes_in_flight = 0
        if self.state is BreakerState.HALF_OPEN:
            if self._probes_in_flight >= self.probes:
                return False
            self._probes_in_flight += 1
        return True

    def record(self, ok: bool) -> None:
        now = time.monotonic()
        if self.state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            if ok:
                self.state = BreakerState.CLOSED
                self._outcomes.clear()
            else:
                self._open(now)
            return
        self._outcomes.append((now, ok))
        while self._outcomes and self._outcomes[0][0] < now - self.window_seconds:
            self._outcomes.popleft()
        failures = sum(1 for _, good in self._outcomes if not good)
        if len(self._outcomes) >= self.min_attempts and failures >= self.failure_ratio * len(
            self._outcomes
        ):
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = BreakerState.OPEN
        self._opened_at = now
        self._outcomes.clear()


class RetryBudget:
    """Retries may be at most `ratio` of requests (plus a small floor), so they cannot
    multiply the load on an upstream that is already failing."""

    def __init__(self, *, ratio: float = 0.2, min_per_second: float = 1, cap: float = 10) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.cap = cap
        self._tokens = cap
        self._updated = time.monotonic()

    def deposit(self) -> None:
        """One first attempt earns `ratio` of a retry."""
        self._refill()
        self._tokens = min(self.cap, self._tokens + self.ratio)

    def withdraw(self) -> bool:
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.cap, self._tokens + (now - self._updated) * self.min_per_second)
        self._updated = now
