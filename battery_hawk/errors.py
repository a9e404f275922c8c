"""The one exception tree of battery-hawk; foreign errors are translated at the edges."""

from __future__ import annotations

__all__ = [
    "AdapterNotReadyError",
    "AuthenticationFailedError",
    "BatteryHawkError",
    "BluetoothUnavailableError",
    "CircuitOpenError",
    "ConfigError",
    "ConnectTimeoutError",
    "DecodeError",
    "DeviceDisconnectedError",
    "DeviceNotFoundError",
    "InProgressError",
    "NotAReading",
    "NotPermittedError",
    "OutOfSlotsError",
    "PayloadError",
    "RadioStartingError",
    "TransportError",
    "UnknownDeviceType",
]


class BatteryHawkError(Exception):
    """Root of every error battery-hawk raises on purpose."""


class ConfigError(BatteryHawkError):
    """The configuration is invalid; the message names the file, the key and the fault.

    A file with several faults raises one ConfigError whose ``problems`` holds each.
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 problems: tuple[ConfigError, ...] = ()) -> None:
        self.file = file
        self.key = key
        self.reason = message
        self.problems: tuple[ConfigError, ...] = problems or (self,)
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)

    @classmethod
    def collect(cls, problems: list[ConfigError], file: str | None) -> ConfigError:
        """One error for all problems found: the problem itself if there is only one."""
        if len(problems) == 1:
            return problems[0]
        lines = "\n".join(f"  {p.key or '(file)'}: {p.reason}" for p in problems)
        return cls(f"{len(problems)} problems:\n{lines}", file=file, problems=tuple(problems))


class DecodeError(BatteryHawkError, ValueError):
    """A frame could not be decoded into a reading (garbage, short, wrong key, wrong type)."""


class NotAReading(DecodeError):
    """A well-formed frame that carries no reading (an echo, a version reply): skip it."""


class UnknownDeviceType(BatteryHawkError, KeyError):
    """A device `type:` that no driver in the protocols registry answers to."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PayloadError(BatteryHawkError, ValueError):
    """An MQTT payload cannot be serialised; it is rejected, never queued."""


class TransportError(BatteryHawkError):
    """A BLE transport failure, translated from bleak / BlueZ at the ble/ edge."""


class DeviceNotFoundError(TransportError):
    """The device is not known to the adapter (not advertising, out of range)."""


class OutOfSlotsError(TransportError):
    """The adapter has no free connection slot."""


class InProgressError(TransportError):
    """BlueZ answered org.bluez.Error.InProgress: another operation holds the adapter."""


class ConnectTimeoutError(TransportError):
    """Connecting, or waiting for a reply, took longer than allowed."""


class DeviceDisconnectedError(TransportError):
    """The link dropped while it was in use."""


class AdapterNotReadyError(TransportError):
    """The adapter exists but cannot work now: powered off, rfkill-blocked, or resetting."""


class RadioStartingError(AdapterNotReadyError):
    """The radio has not finished its first attempt to come up (a proxy still connecting
    at start-up): no fault yet, and no reason to move its devices elsewhere."""


class BluetoothUnavailableError(TransportError):
    """No way to Bluetooth at all: no system D-Bus, no BlueZ on it, or no such adapter."""


class NotPermittedError(TransportError):
    """BlueZ or D-Bus refused the operation (policy, permissions, a blocked device)."""


class AuthenticationFailedError(TransportError):
    """Pairing or an encrypted characteristic failed: the device wants authentication."""


class CircuitOpenError(TransportError):
    """The device's circuit breaker is open: it is not tried until its recovery timeout."""
