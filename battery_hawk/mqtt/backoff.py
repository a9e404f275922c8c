"""Reconnection settings and the pure backoff function."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["ReconnectionConfig", "retry_delay"]


@dataclass(frozen=True, slots=True)
class ReconnectionConfig:
    """How the interface reconnects and how much it holds while the broker is away.

    The defaults match config.MqttConfig (see config/battery-hawk.yaml).
    """

    max_retries: int = 10
    initial_retry_delay: float = 1.0
    max_retry_delay: float = 300.0
    backoff_multiplier: float = 2.0
    jitter_factor: float = 0.1
    connection_timeout: float = 30.0
    health_check_interval: float = 60.0
    message_queue_size: int = 1000
    message_retry_limit: int = 3
    # Bound on one broker round trip (publish ack, subscribe ack, ping). A QoS 1
    # publish in flight when the link drops is not woken by the disconnect in
    # aiomqtt 2, so this is what keeps it from hanging.
    operation_timeout: float = 5.0
    # Most QoS >= 1 publishes awaiting their acknowledgement at once.
    max_in_flight: int = 100

    def __post_init__(self) -> None:
        checks: tuple[tuple[str, bool, str], ...] = (
            ("max_retries", self.max_retries >= 0, "must be >= 0"),
            ("initial_retry_delay", self.initial_retry_delay >= 0, "must be >= 0"),
            ("max_retry_delay", self.max_retry_delay >= self.initial_retry_delay,
             "must be >= initial_retry_delay"),
            ("backoff_multiplier", self.backoff_multiplier >= 1.0, "must be >= 1"),
            ("jitter_factor", 0.0 <= self.jitter_factor <= 1.0, "must be within 0..1"),
            ("connection_timeout", self.connection_timeout > 0, "must be > 0"),
            ("health_check_interval", self.health_check_interval > 0, "must be > 0"),
            ("message_queue_size", self.message_queue_size >= 1, "must be >= 1"),
            ("message_retry_limit", self.message_retry_limit >= 0, "must be >= 0"),
            ("operation_timeout", self.operation_timeout > 0, "must be > 0"),
            ("max_in_flight", self.max_in_flight >= 1, "must be >= 1"),
        )
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"{name} {why} (got {getattr(self, name)!r})")


def retry_delay(attempt: int, config: ReconnectionConfig, rng: random.Random) -> float:
    """Delay before reconnection attempt ``attempt`` (0-based), in seconds.

    ``min(max_retry_delay, initial_retry_delay * backoff_multiplier ** attempt)``,
    scaled by a uniform factor in ``[1 - jitter_factor, 1 + jitter_factor]`` drawn
    from ``rng`` (jitter spreads the reconnects of many gateways after a broker
    restart). Never negative.
    """
    attempt = max(0, attempt)
    try:
        base = config.initial_retry_delay * config.backoff_multiplier**attempt
    except OverflowError:
        base = math.inf
    delay = min(config.max_retry_delay, base)
    jitter = config.jitter_factor
    if jitter:
        delay *= 1.0 + rng.uniform(-jitter, jitter)
    return max(0.0, delay)
