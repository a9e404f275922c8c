"""BLE tests run the real bleak BlueZ backend against the fake BlueZ."""

from tests.fakebluez.fixtures import fake_bluez, fake_bluez_module

__all__ = ["fake_bluez", "fake_bluez_module"]
