"""A per-device circuit breaker: a dead device stops costing radio time.

Pure: no asyncio, no I/O; the clock is injected so tests move time by hand.
CLOSED counts consecutive failures; at failure_threshold it opens. OPEN refuses every
attempt until recovery_timeout has passed, then it is HALF_OPEN and lets exactly one
trial through: a success closes it, a failure opens it for another recovery_timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from battery_hawk.errors import CircuitOpenError

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures of one device and decides whether to try it."""

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if recovery_timeout < 0:
            raise ValueError("recovery_timeout must not be negative")
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.name = name
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.recovery_timeout:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def failures(self) -> int:
        """Consecutive failures since the last success."""
        return self._failures

    @property
    def retry_at(self) -> float | None:
        """Clock time from which the next trial is allowed (None while closed)."""
        if self._opened_at is None:
            return None
        return self._opened_at + self.recovery_timeout

    def allow(self) -> bool:
        """Whether an attempt may go ahead now; in HALF_OPEN only one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def check(self) -> None:
        """Like allow(), but raise CircuitOpenError instead of returning False."""
        if not self.allow():
            retry_in = max(0.0, (self.retry_at or 0.0) - self._clock())
            who = f"{self.name}: " if self.name else ""
            raise CircuitOpenError(
                f"{who}circuit open after {self._failures} failures, retry in {retry_in:.0f} s"
            )

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        was_trial = self._trial_in_flight
        self._trial_in_flight = False
        if was_trial or self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker({self.name!r}, state={self.state.value}, "
            f"failures={self._failures}/{self.failure_threshold})"
        )
