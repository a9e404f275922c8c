"""Fixtures of the MQTT tests: real brokers from tests/support/brokers.py, fast settings."""

from __future__ import annotations

import random

import pytest

from battery_hawk.mqtt import BrokerSettings, ReconnectionConfig
from tests.support.brokers import amqtt_broker, mosquitto, mqtt_subscriber

__all__ = [
    "FAST",
    "amqtt_broker",
    "fast_config",
    "mosquitto",
    "mqtt_subscriber",
    "settings_for",
]

FAST = ReconnectionConfig(
    max_retries=0,
    initial_retry_delay=0.05,
    max_retry_delay=0.2,
    connection_timeout=2.0,
    health_check_interval=5.0,
    operation_timeout=2.0,
)


@pytest.fixture
def fast_config() -> ReconnectionConfig:
    """Reconnection settings with delays short enough for tests."""
    return FAST


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


def settings_for(
    port: int, client_id: str = "battery-hawk-test", **kwargs: object
) -> BrokerSettings:
    return BrokerSettings("127.0.0.1", port, client_id=client_id, **kwargs)  # type: ignore[arg-type]
