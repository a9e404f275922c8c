"""The per-device circuit breaker, with a hand-moved clock."""

from __future__ import annotations

import pytest

from battery_hawk.ble.breaker import BreakerState, CircuitBreaker
from battery_hawk.errors import CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_breaker_stays_closed_below_threshold(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=60, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.failures == 2


def test_success_resets_the_failure_count(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=60, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 1


def test_breaker_opens_at_threshold_and_refuses_until_recovery(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=60, clock=clock, name="car")
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_at == 1060.0
    assert not breaker.allow()
    clock.now += 59.9
    with pytest.raises(CircuitOpenError, match="car"):
        breaker.check()


def test_half_open_lets_exactly_one_trial_through(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=60, clock=clock)
    breaker.record_failure()
    clock.now += 60
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # the trial is still running


def test_successful_trial_closes_the_breaker(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=60, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 61
    breaker.check()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert breaker.retry_at is None


def test_failed_trial_reopens_for_another_recovery_timeout(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=60, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 60
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_at == clock.now + 60


def test_breaker_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(recovery_timeout=-1)
