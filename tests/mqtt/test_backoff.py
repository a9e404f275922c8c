"""The backoff function is pure: seeded random source in, exact delay out."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from battery_hawk.mqtt import ReconnectionConfig, retry_delay

NO_JITTER = ReconnectionConfig(initial_retry_delay=1.0, max_retry_delay=300.0,
                               backoff_multiplier=2.0, jitter_factor=0.0)


def test_delay_doubles_from_the_initial_delay_without_jitter() -> None:
    rng = random.Random(0)
    assert [retry_delay(n, NO_JITTER, rng) for n in range(6)] == [1, 2, 4, 8, 16, 32]


def test_delay_is_capped_at_max_retry_delay() -> None:
    rng = random.Random(0)
    assert retry_delay(9, NO_JITTER, rng) == 300.0
    assert retry_delay(10_000, NO_JITTER, rng) == 300.0  # no OverflowError


def test_jitter_comes_from_the_injected_random_source() -> None:
    config = ReconnectionConfig()  # jitter 0.1
    expected_rng = random.Random(42)
    expected = [min(300.0, 2.0**n) * (1 + expected_rng.uniform(-0.1, 0.1)) for n in range(12)]
    rng = random.Random(42)
    assert [retry_delay(n, config, rng) for n in range(12)] == expected


def test_same_seed_gives_same_delays_and_other_seed_differs() -> None:
    config = ReconnectionConfig()
    first = [retry_delay(n, config, random.Random(7)) for n in range(5)]
    again = [retry_delay(n, config, random.Random(7)) for n in range(5)]
    other = [retry_delay(n, config, random.Random(8)) for n in range(5)]
    assert first == again
    assert first != other


@given(attempt=st.integers(min_value=-3, max_value=5000), seed=st.integers(0, 2**32),
       jitter=st.floats(0.0, 1.0))
def test_delay_stays_within_the_jitter_band(attempt: int, seed: int, jitter: float) -> None:
    config = ReconnectionConfig(initial_retry_delay=0.5, max_retry_delay=60.0,
                                backoff_multiplier=3.0, jitter_factor=jitter)
    base = min(60.0, 0.5 * 3.0 ** max(0, min(attempt, 100)))
    delay = retry_delay(attempt, config, random.Random(seed))
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9
    assert delay >= 0


def test_defaults_are_those_of_the_design() -> None:
    config = ReconnectionConfig()
    assert (config.max_retries, config.initial_retry_delay, config.max_retry_delay,
            config.backoff_multiplier, config.jitter_factor, config.connection_timeout,
            config.health_check_interval, config.message_queue_size,
            config.message_retry_limit) == (10, 1.0, 300.0, 2.0, 0.1, 30.0, 60.0, 1000, 3)


@pytest.mark.parametrize("field,value", [
    ("initial_retry_delay", -1.0), ("jitter_factor", 1.5), ("message_queue_size", 0),
    ("max_retries", -1), ("backoff_multiplier", 0.5), ("max_retry_delay", 0.1),
])
def test_config_refuses_out_of_range_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ReconnectionConfig(**{field: value})  # type: ignore[arg-type]
