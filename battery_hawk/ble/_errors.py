"""bleak / BlueZ failures translated into battery-hawk's TransportError tree."""

from __future__ import annotations

import asyncio

from bleak.exc import BleakDBusError, BleakDeviceNotFoundError, BleakError
from bleak_retry_connector import BleakNotFoundError, BleakOutOfConnectionSlotsError

from battery_hawk.errors import (
    ConnectTimeoutError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    InProgressError,
    OutOfSlotsError,
    TransportError,
)

__all__ = ["BLEAK_FAILURES", "IN_PROGRESS", "dbus_error_name", "translate"]

IN_PROGRESS = "org.bluez.Error.InProgress"
_NOT_CONNECTED = {"org.bluez.Error.NotConnected"}
_NOT_FOUND = {"org.freedesktop.DBus.Error.UnknownObject", "org.bluez.Error.DoesNotExist"}

# What may escape a bleak call: its own errors, any OSError (no D-Bus socket, no
# permission to it, a dead connection), a timeout, and the KeyError / AttributeError
# bleak raises when BlueZ objects vanish under it.
BLEAK_FAILURES: tuple[type[BaseException], ...] = (
    BleakError,
    EOFError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    KeyError,
    AttributeError,
)


def dbus_error_name(exc: BaseException) -> str | None:
    """The BlueZ error name behind exc, looking through __cause__ / __context__ chains."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BleakDBusError):
            return current.dbus_error
        current = current.__cause__ or current.__context__
    return None


def translate(exc: BaseException, address: str, doing: str) -> TransportError:
    """The TransportError subclass for exc; the caller raises it `from exc`."""
    if isinstance(exc, TransportError):
        return exc
    what = f"{address}: {doing} failed: {exc or type(exc).__name__}"
    name = dbus_error_name(exc)
    if name == IN_PROGRESS:
        return InProgressError(what)
    if name in _NOT_CONNECTED:
        return DeviceDisconnectedError(what)
    if name in _NOT_FOUND:
        return DeviceNotFoundError(what)
    if isinstance(exc, BleakOutOfConnectionSlotsError):
        return OutOfSlotsError(what)
    if isinstance(exc, BleakNotFoundError | BleakDeviceNotFoundError):
        return DeviceNotFoundError(what)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ConnectTimeoutError(f"{address}: {doing} timed out")
    if isinstance(exc, BleakError) and "not connected" in str(exc).lower():
        return DeviceDisconnectedError(what)
    if isinstance(exc, EOFError | BrokenPipeError | ConnectionError):
        return TransportError(f"{address}: {doing} failed: D-Bus connection lost ({exc!r})")
    return TransportError(what)
