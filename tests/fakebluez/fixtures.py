"""pytest fixtures for the fake BlueZ; import them into a conftest.py:

    from tests.fakebluez.fixtures import fake_bluez, fake_bluez_module  # noqa: F401

Both set DBUS_SYSTEM_BUS_ADDRESS for the test process; a subprocess (e.g. the daemon
under test) gets the same with `env=fake_bluez.env()`. A missing dbus-daemon or
python3-dbusmock fails the test (FakeBlueZError), it is never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fakebluez.controller import FakeBlueZ

__all__ = ["fake_bluez", "fake_bluez_module"]


@pytest.fixture
def fake_bluez(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBlueZ]:
    """A fresh fake BlueZ (adapter hci0, no devices) for one test."""
    fake = FakeBlueZ()
    fake.start()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", fake.bus_address)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def fake_bluez_module() -> Iterator[FakeBlueZ]:
    """One fake BlueZ shared by a module's tests: give each test its own addresses."""
    fake = FakeBlueZ()
    fake.start()
    previous = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = fake.bus_address
    try:
        yield fake
    finally:
        if previous is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = previous
        fake.stop()
