"""Daemon tests use the real brokers of tests/support/brokers.py."""

from tests.support.brokers import amqtt_broker, mosquitto, mqtt_subscriber

__all__ = ["amqtt_broker", "mosquitto", "mqtt_subscriber"]
