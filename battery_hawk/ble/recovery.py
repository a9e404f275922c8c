"""A stuck adapter heals itself: when to power-cycle it, and how.

When: AdapterDoctor is pure bookkeeping with an injected clock. It counts consecutive
failures whose class heals (in progress, adapter not ready: see ble/_errors.py) and
watches how long discovery has run without hearing anything. Either past its
threshold makes a recovery due, at most once per `min_interval`; while recoveries do
not help (no success, no advertisement since), the interval doubles up to
`max_interval`.

How: first over D-Bus, as any BlueZ client may: org.bluez.Adapter1.Powered false, then
true. If that fails, or the previous D-Bus cycle did not help, and the adapter is real
hardware (it has /sys/class/bluetooth/hciN), Home Assistant's bluetooth-auto-recovery
takes over: rfkill unblock, a kernel-level power cycle over the management socket and,
for a silent USB dongle, a USB reset. It is imported only then.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from battery_hawk.ble._errors import Trouble, row
from battery_hawk.errors import (
    AdapterNotReadyError,
    BluetoothUnavailableError,
    TransportError,
)

__all__ = [
    "AdapterDoctor",
    "RecoveryEvent",
    "RecoveryReason",
    "RecoverySettings",
    "dbus_power_cycle",
    "recover_adapter",
]

_LOGGER = logging.getLogger(__name__)

ADAPTER_IFACE = "org.bluez.Adapter1"
SYSFS_BLUETOOTH = Path("/sys/class/bluetooth")
DBUS_TIMEOUT = 10.0
UNKNOWN_MAC = "00:00:00:00:00:00"


class RecoveryReason(StrEnum):
    """Why an adapter was power-cycled."""

    STUCK = "stuck"  # repeated in-progress / not-ready failures
    SILENT = "silent"  # discovery ran for long and heard nothing


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    """When the adapter is power-cycled. enabled=False: never."""

    stuck_after: int = 3  # consecutive in-progress / not-ready failures
    silence: float = 300.0  # seconds of discovery without one advertisement
    min_interval: float = 300.0  # seconds between two recoveries
    max_interval: float = 3600.0  # the interval doubles up to this while it does not help
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.stuck_after < 1:
            raise ValueError("stuck_after must be at least 1")
        if self.silence <= 0 or self.min_interval < 0 or self.max_interval < self.min_interval:
            raise ValueError("silence > 0 and 0 <= min_interval <= max_interval are required")


@dataclass(frozen=True, slots=True)
class RecoveryEvent:
    """One recovery: which adapter, why, how (dbus / bluetooth-auto-recovery), whether it
    worked, and what happened in words."""

    adapter: str
    reason: RecoveryReason
    method: str
    ok: bool
    detail: str


class AdapterDoctor:
    """Decides when an adapter gets power-cycled (pure: no I/O, clock injected)."""

    def __init__(
        self,
        settings: RecoverySettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or RecoverySettings()
        self._clock = clock
        self._stuck = 0
        # silence: since the last advertisement, counting only time spent discovering
        # (a restarted scanner keeps its count; a pause for a connection does not add)
        self._silent_since: float | None = None
        self._paused_at: float | None = None
        self._scanning = False
        self._next_allowed: float | None = None
        self._interval = self.settings.min_interval
        self.unhelped = 0  # recoveries since the last sign of life

    @property
    def stuck_failures(self) -> int:
        return self._stuck

    def record(self, trouble: Trouble) -> None:
        """A failure; only the classes whose policy heals count towards a recovery."""
        if row(trouble).policy.heals:
            self._stuck += 1

    def record_success(self) -> None:
        """A connection came up: the adapter works."""
        self._stuck = 0
        self._alive()

    def heard(self) -> None:
        """An advertisement arrived."""
        self._silent_since = self._clock()
        self._alive()

    def scanning(self, running: bool) -> None:
        """Discovery started or stopped (silence counts only while it runs)."""
        now = self._clock()
        if running and not self._scanning:
            if self._silent_since is None:
                self._silent_since = now
            elif self._paused_at is not None:
                self._silent_since += now - self._paused_at
            self._paused_at = None
        elif not running and self._scanning:
            self._paused_at = now
        self._scanning = running

    def _alive(self) -> None:
        self.unhelped = 0
        self._interval = self.settings.min_interval

    def due(self) -> RecoveryReason | None:
        """Why the adapter should be power-cycled now, or None."""
        if not self.settings.enabled:
            return None
        now = self._clock()
        if self._next_allowed is not None and now < self._next_allowed:
            return None
        if self._stuck >= self.settings.stuck_after:
            return RecoveryReason.STUCK
        silent_since = self._silent_since
        if self._scanning and silent_since is not None and (
            now - silent_since >= self.settings.silence
        ):
            return RecoveryReason.SILENT
        return None

    def recovered(self) -> None:
        """A recovery was made (whatever its outcome): start counting afresh."""
        now = self._clock()
        self._stuck = 0
        self._silent_since = now
        self._paused_at = None if self._scanning else now
        self._next_allowed = now + self._interval
        self._interval = min(2 * self._interval, self.settings.max_interval)
        self.unhelped += 1


# --- how: D-Bus, then bluetooth-auto-recovery ------------------------------------------


async def _property(bus: Any, path: str, name: str) -> Any:
    body = await _call_at(bus, path, "Get", "ss", [ADAPTER_IFACE, name])
    return body[0].value


async def _call_at(bus: Any, path: str, member: str, signature: str, body: list[Any]) -> Any:
    from dbus_fast import Message, MessageType

    reply = await bus.call(Message(
        destination="org.bluez", path=path, interface="org.freedesktop.DBus.Properties",
        member=member, signature=signature, body=body,
    ))
    if reply is not None and reply.message_type == MessageType.ERROR:
        detail = reply.body[0] if reply.body else ""
        error = f"{reply.error_name}: {detail}"
        if "rfkill" in error.lower() or reply.error_name == "org.bluez.Error.Blocked":
            raise AdapterNotReadyError(
                f"{error} (rfkill blocks Bluetooth: `rfkill unblock bluetooth`)")
        if reply.error_name in ("org.freedesktop.DBus.Error.ServiceUnknown",
                                "org.freedesktop.DBus.Error.UnknownObject"):
            raise BluetoothUnavailableError(error)
        raise AdapterNotReadyError(error)
    if reply is None:
        raise AdapterNotReadyError(f"BlueZ did not answer {member}")
    return list(reply.body)


async def _set_powered(bus: Any, path: str, powered: bool, timeout: float) -> None:
    from dbus_fast import Variant

    await _call_at(bus, path, "Set", "ssv", [ADAPTER_IFACE, "Powered", Variant("b", powered)])
    # BlueZ answers Set once the controller has switched; still, confirm it (bounded)
    async with asyncio.timeout(timeout):
        while True:
            if bool(await _property(bus, path, "Powered")) is powered:
                return
            await asyncio.sleep(0.05)


async def _system_bus() -> Any:
    from dbus_fast import BusType
    from dbus_fast.aio import MessageBus
    from dbus_fast.auth import AuthExternal

    bus = MessageBus(bus_type=BusType.SYSTEM, auth=AuthExternal(uid=os.getuid()))
    try:
        await bus.connect()
    except OSError as exc:
        bus.disconnect()
        raise BluetoothUnavailableError(f"cannot reach the system D-Bus: {exc}") from exc
    return bus


async def dbus_power_cycle(adapter: str, timeout: float = DBUS_TIMEOUT) -> str:
    """Power the adapter (hciN) off and on through BlueZ; returns its MAC address.

    Raises AdapterNotReadyError when BlueZ refuses (rfkill) or the adapter does not come
    back within timeout seconds, BluetoothUnavailableError without D-Bus / BlueZ.
    """
    path = f"/org/bluez/{adapter}"
    try:
        async with asyncio.timeout(timeout):
            bus = await _system_bus()
    except TimeoutError as exc:
        raise BluetoothUnavailableError("the system D-Bus did not answer") from exc
    try:
        address = str(await _property(bus, path, "Address"))
        await _set_powered(bus, path, False, timeout)
        await _set_powered(bus, path, True, timeout)
        return address
    except TimeoutError as exc:
        raise AdapterNotReadyError(f"{adapter} did not switch within {timeout} s") from exc
    finally:
        bus.disconnect()


def _real_hardware(adapter: str) -> bool:
    return (SYSFS_BLUETOOTH / adapter).exists()


async def _auto_recovery(adapter: str, mac: str, gone_silent: bool) -> bool:
    from bluetooth_auto_recovery import recover_adapter as recover  # real hardware only

    return bool(await recover(int(adapter.removeprefix("hci")), mac, gone_silent=gone_silent))


async def _adapter_mac(adapter: str) -> str:
    bus = await _system_bus()
    try:
        async with asyncio.timeout(DBUS_TIMEOUT):
            return str(await _property(bus, f"/org/bluez/{adapter}", "Address"))
    finally:
        bus.disconnect()


AutoRecover = Callable[[str, str, bool], Awaitable[bool]]
"""(hciN, adapter MAC, gone silent) -> whether the adapter was recovered."""


async def recover_adapter(
    adapter: str,
    reason: RecoveryReason,
    *,
    escalate: bool = False,
    hardware: Callable[[str], bool] = _real_hardware,
    auto_recover: AutoRecover = _auto_recovery,
) -> RecoveryEvent:
    """Power-cycle the adapter over D-Bus; on real hardware fall back to (or, with
    escalate, go straight to) bluetooth-auto-recovery. Never raises TransportError:
    the outcome is in the event. hardware / auto_recover are for tests."""
    real = adapter.startswith("hci") and hardware(adapter)
    failure = ""
    if not (escalate and real):
        try:
            await dbus_power_cycle(adapter)
            return RecoveryEvent(adapter, reason, "dbus", True, "Powered off and on over D-Bus")
        except TransportError as exc:
            failure = str(exc)
            if not real:
                return RecoveryEvent(adapter, reason, "dbus", False, failure)
    try:
        mac = await _adapter_mac(adapter)
    except TransportError:
        mac = UNKNOWN_MAC  # bluetooth-auto-recovery finds the adapter by its name too
    try:
        ok = await auto_recover(adapter, mac, reason is RecoveryReason.SILENT)
    except (TransportError, OSError, ImportError, ValueError) as exc:
        detail = f"{failure}; bluetooth-auto-recovery failed: {exc}".lstrip("; ")
        return RecoveryEvent(adapter, reason, "bluetooth-auto-recovery", False, detail)
    detail = "reset by bluetooth-auto-recovery" if ok else "bluetooth-auto-recovery gave up"
    if failure:
        detail = f"{failure}; then {detail}"
    return RecoveryEvent(adapter, reason, "bluetooth-auto-recovery", ok, detail)
