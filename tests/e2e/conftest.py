"""End-to-end tests run the daemon as a subprocess against the fake BlueZ and mosquitto."""

from tests.fakebluez.fixtures import fake_bluez
from tests.support.brokers import mosquitto

__all__ = ["fake_bluez", "mosquitto"]
