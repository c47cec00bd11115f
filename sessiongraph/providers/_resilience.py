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
    """Opens when enough recent requests failed; after a pause lets a few probes through.

    One outcome per logical request (after its retries), kept for a rolling
    `window_seconds`; the breaker opens once at least `min_attempts` of them exist and
    `failure_ratio` of them failed. Half-open, up to `probes` requests go out at once: it
    closes after `probes` of them succeeded and opens again only once `probes` failed first,
    so one unlucky probe neither keeps it open nor decides alone.
    """

    def __init__(
        self,
        *,
        window_seconds: float = 30,
        min_attempts: int = 10,
        failure_ratio: float = 0.5,
        open_seconds: float = 15,
        probes: int = 3,
    ) -> None:
        self.window_seconds = window_seconds
        self.min_attempts = min_attempts
        self.failure_ratio = failure_ratio
        self.open_seconds = open_seconds
        self.probes = max(1, probes)
        self.state = BreakerState.CLOSED
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._probe_failures = 0

    def retry_after(self) -> float:
        return max(0.0, self._opened_at + self.open_seconds - time.monotonic())

    def allow(self) -> bool:
        """Whether a request may go out now (and, half-open, count it as a probe).

        Every allowed request must end in exactly one `record`.
        """
        if self.state is BreakerState.OPEN:
            if self.retry_after() > 0:
                return False
            self.state = BreakerState.HALF_OPEN
            self._probes_in_flight = self._probe_successes = self._probe_failures = 0
        if self.state is BreakerState.HALF_OPEN:
            if self._probes_in_flight >= self.probes:
                return False
            self._probes_in_flight += 1
        return True

    def record(self, ok: bool | None) -> None:
        """The outcome of one allowed request; None (it was abandoned) only frees its slot."""
        now = time.monotonic()
        if self.state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            if ok is None:
                return
            if ok:
                self._probe_successes += 1
            else:
                self._probe_failures += 1
            if self._probe_successes >= self.probes:
                self.state = BreakerState.CLOSED
                self._outcomes.clear()
            elif self._probe_failures >= self.probes:
                self._open(now)
            return
        if ok is None or self.state is BreakerState.OPEN:
            # A request allowed before the breaker opened says nothing new.
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
        self._probes_in_flight = self._probe_successes = self._probe_failures = 0


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
