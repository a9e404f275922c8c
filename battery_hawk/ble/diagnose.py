"""Why Bluetooth does not work here, in words a user can act on.

diagnose() walks the chain a BLE read depends on and stops at the first broken link:
the system D-Bus socket, BlueZ (bluetoothd) on that bus, the adapter, its power and
rfkill. Each finding is a typed TransportError whose message says what is wrong and
what to do, so `scan`, `read` and the daemon never show a bare `[Errno 2]` or
`ServiceUnknown`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.auth import AuthExternal

from battery_hawk.errors import (
    AdapterNotReadyError,
    BluetoothUnavailableError,
    NotPermittedError,
    TransportError,
)

__all__ = ["DEFAULT_SYSTEM_BUS", "diagnose", "rfkill_state"]

DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"
SYSFS_RFKILL = Path("/sys/class/rfkill")
ADAPTER_IFACE = "org.bluez.Adapter1"

NO_BLUEZ = (
    "BlueZ (bluetoothd) is not on the system D-Bus: is bluetooth.service running? "
    "`systemctl status bluetooth`; start it with `sudo systemctl enable --now bluetooth` "
    "(Debian / Raspberry Pi OS package: bluez)"
)


def _bus_address() -> str:
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


def rfkill_state(root: Path = SYSFS_RFKILL) -> str | None:
    """"hard" or "soft" if the kernel's rfkill blocks a Bluetooth radio, else None."""
    state = None
    for entry in sorted(root.glob("rfkill*")) if root.is_dir() else ():
        try:
            if (entry / "type").read_text().strip() != "bluetooth":
                continue
            if (entry / "hard").read_text().strip() == "1":
                return "hard"
            if (entry / "soft").read_text().strip() == "1":
                state = "soft"
        except OSError:
            continue
    return state


async def _connect() -> MessageBus:
    where = _bus_address()
    bus = MessageBus(bus_type=BusType.SYSTEM, auth=AuthExternal(uid=os.getuid()))
    try:
        await bus.connect()
    except PermissionError as exc:
        bus.disconnect()
        raise NotPermittedError(
            f"the system D-Bus at {where} refuses this user ({exc.strerror}): run battery-hawk "
            "as a user in the `bluetooth` group or as root"
        ) from exc
    except OSError as exc:
        bus.disconnect()
        reason = exc.strerror or type(exc).__name__
        raise BluetoothUnavailableError(
            f"no system D-Bus at {where} ({reason.lower()}): BlueZ is reached over D-Bus; is "
            "dbus running? `systemctl status dbus`. In a container, mount the host's "
            "/run/dbus (`-v /run/dbus:/run/dbus:ro`)"
        ) from exc
    except Exception as exc:  # dbus-fast's AuthError and friends
        bus.disconnect()
        raise NotPermittedError(f"the system D-Bus at {where} did not let us in: {exc}") from exc
    return bus


async def _call(bus: MessageBus, message: Message) -> list[Any]:
    reply = await bus.call(message)
    if reply is None:
        raise BluetoothUnavailableError(f"no reply from {message.destination}")
    if reply.message_type == MessageType.ERROR:
        if reply.error_name in ("org.freedesktop.DBus.Error.ServiceUnknown",
                                "org.freedesktop.DBus.Error.NameHasNoOwner"):
            raise BluetoothUnavailableError(NO_BLUEZ)
        if reply.error_name == "org.freedesktop.DBus.Error.AccessDenied":
            raise NotPermittedError(
                f"D-Bus policy forbids talking to BlueZ ({reply.body[0] if reply.body else ''})"
                ": run battery-hawk as a user in the `bluetooth` group or as root"
            )
        raise BluetoothUnavailableError(f"BlueZ answered {reply.error_name}: {reply.body}")
    return list(reply.body)


def _adapters(objects: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """hciN -> its Adapter1 properties (plain values)."""
    found = {}
    for path, interfaces in objects.items():
        props = interfaces.get(ADAPTER_IFACE)
        if props is not None:
            found[str(path).rsplit("/", 1)[-1]] = {k: v.value for k, v in props.items()}
    return found


def _pick(adapter: str, adapters: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    for name, props in adapters.items():
        if adapter == name or adapter.upper() == str(props.get("Address", "")).upper():
            return name, props
    known = ", ".join(f"{n} ({p.get('Address', '?')})" for n, p in sorted(adapters.items()))
    if known:
        raise BluetoothUnavailableError(
            f"no Bluetooth adapter {adapter}; BlueZ has {known}: set `bluetooth.adapter` (or "
            "--adapter) to one of them (`bluetoothctl list`)"
        )
    raise BluetoothUnavailableError(
        f"no Bluetooth adapter {adapter}: BlueZ runs but sees no adapter at all; plug in the "
        "USB adapter or enable the built-in one, then check `bluetoothctl list` and "
        "`dmesg | grep -i bluetooth`"
    )


def _power_problem(name: str, props: dict[str, Any], rfkill: str | None) -> TransportError | None:
    if props.get("Powered", True):
        return None
    if rfkill == "hard":
        return AdapterNotReadyError(
            f"{name} is off: a hardware switch blocks Bluetooth (rfkill hard block); turn the "
            "switch or the BIOS setting on, then `bluetoothctl power on`"
        )
    if props.get("PowerState") == "off-blocked" or rfkill == "soft":
        return AdapterNotReadyError(
            f"{name} is off and blocked by rfkill: `sudo rfkill unblock bluetooth`, then "
            "`bluetoothctl power on`"
        )
    return AdapterNotReadyError(
        f"{name} is powered off: `bluetoothctl power on` (AutoEnable=true in "
        "/etc/bluetooth/main.conf keeps it on after a reboot)"
    )


async def diagnose(adapter: str = "hci0", timeout: float = 5.0) -> TransportError | None:
    """The first broken link between us and the adapter as a typed error (message says
    what to do), or None if D-Bus, BlueZ and a powered adapter are all there."""
    try:
        async with asyncio.timeout(timeout):
            bus = await _connect()
            try:
                owned = await _call(bus, Message(
                    destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus", member="NameHasOwner", signature="s",
                    body=["org.bluez"],
                ))
                if not owned[0]:
                    raise BluetoothUnavailableError(NO_BLUEZ)
                objects = await _call(bus, Message(
                    destination="org.bluez", path="/",
                    interface="org.freedesktop.DBus.ObjectManager", member="GetManagedObjects",
                ))
            finally:
                bus.disconnect()
    except TransportError as exc:
        return exc
    except TimeoutError:
        return BluetoothUnavailableError(
            f"the system D-Bus at {_bus_address()} or BlueZ did not answer within {timeout} s: "
            "`systemctl status dbus bluetooth`"
        )
    try:
        name, props = _pick(adapter, _adapters(objects[0]))
    except TransportError as exc:
        return exc
    return _power_problem(name, props, rfkill_state())
