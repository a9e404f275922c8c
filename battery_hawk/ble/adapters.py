"""The local Bluetooth adapters BlueZ has, and a watch for adapters that come and go.

BlueZ lists each adapter as an object /org/bluez/hciN with the interface
org.bluez.Adapter1 on its ObjectManager (bluez.git doc/org.bluez.Adapter.rst); plugging
a USB dongle in or out makes it send InterfacesAdded / InterfacesRemoved for it (the
D-Bus specification, org.freedesktop.DBus.ObjectManager). `AdapterWatch` subscribes to
those signals first and then asks GetManagedObjects, so no adapter that appears in
between is missed.

bluetooth-adapters (the library Home Assistant uses) lists adapters once with their USB
details; a daemon that must notice an adapter leaving and returning needs the signals
as well, on one connection, so this module asks BlueZ itself (with dbus-fast, which
bleak already brings).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.auth import AuthExternal

from battery_hawk.errors import BluetoothUnavailableError

__all__ = ["AdapterInfo", "AdapterWatch", "list_adapters", "select_adapters"]

_LOGGER = logging.getLogger(__name__)

ADAPTER_IFACE = "org.bluez.Adapter1"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
DBUS_TIMEOUT = 5.0
_ADAPTER_PATH = re.compile(r"/org/bluez/(hci\d+)")
PROPERTIES = "org.freedesktop.DBus.Properties"
_MATCHES = (
    f"type='signal',sender='org.bluez',interface='{OBJECT_MANAGER}'",
    f"type='signal',sender='org.bluez',interface='{PROPERTIES}',member='PropertiesChanged',"
    f"arg0='{ADAPTER_IFACE}'",
)


@dataclass(frozen=True, slots=True, order=True)
class AdapterInfo:
    """One local adapter: its BlueZ name (hci0) and MAC address (upper case)."""

    name: str
    address: str


def select_adapters(present: Iterable[AdapterInfo], wanted: Sequence[str] | None
                    ) -> list[AdapterInfo]:
    """The present adapters the configuration asks for, in BlueZ's order (hci0 first).

    wanted: adapter names (hci1) or MAC addresses, any case; None: every adapter.
    """
    adapters = sorted(present, key=lambda a: (len(a.name), a.name))
    if wanted is None:
        return adapters
    asked = {w.upper() for w in wanted}
    return [a for a in adapters if a.name.upper() in asked or a.address.upper() in asked]


def _adapter(path: str, interfaces: dict[str, Any]) -> AdapterInfo | None:
    match = _ADAPTER_PATH.fullmatch(path)
    props = interfaces.get(ADAPTER_IFACE)
    if match is None or props is None:
        return None
    address = props.get("Address")
    value = getattr(address, "value", address)
    return AdapterInfo(match.group(1), str(value or "").upper())


async def _system_bus() -> MessageBus:
    bus = MessageBus(bus_type=BusType.SYSTEM, auth=AuthExternal(uid=os.getuid()))
    try:
        async with asyncio.timeout(DBUS_TIMEOUT):
            await bus.connect()
    except (OSError, TimeoutError, DBusError) as exc:
        bus.disconnect()
        raise BluetoothUnavailableError(f"cannot reach the system D-Bus: {exc}") from exc
    return bus


async def _managed_adapters(bus: MessageBus) -> list[AdapterInfo]:
    try:
        async with asyncio.timeout(DBUS_TIMEOUT):
            reply = await bus.call(Message(destination="org.bluez", path="/",
                                           interface=OBJECT_MANAGER,
                                           member="GetManagedObjects"))
    except (OSError, TimeoutError, DBusError) as exc:
        raise BluetoothUnavailableError(f"BlueZ did not list its adapters: {exc}") from exc
    if reply is None or reply.message_type != MessageType.METHOD_RETURN:
        detail = reply.error_name if reply is not None else "no reply"
        raise BluetoothUnavailableError(f"BlueZ did not list its adapters ({detail})")
    found = (_adapter(str(path), interfaces) for path, interfaces in reply.body[0].items())
    return sorted((a for a in found if a is not None), key=lambda a: (len(a.name), a.name))


async def list_adapters() -> list[AdapterInfo]:
    """The adapters BlueZ has now, hci0 first. Raises BluetoothUnavailableError without
    a system D-Bus or BlueZ on it."""
    bus = await _system_bus()
    try:
        return await _managed_adapters(bus)
    finally:
        bus.disconnect()


class AdapterWatch:
    """Calls on_added(AdapterInfo) / on_removed(name) as BlueZ adds and removes adapters,
    and on_powered(name, powered) when an adapter is switched off or on (Adapter1.Powered).

    `start()` returns the adapters present; the callbacks run in the event loop for each
    change after that. `stop()` ends the watch (an async context manager too).
    """

    def __init__(self, on_added: Callable[[AdapterInfo], None],
                 on_removed: Callable[[str], None],
                 on_powered: Callable[[str, bool], None] | None = None) -> None:
        self._on_added = on_added
        self._on_removed = on_removed
        self._on_powered = on_powered
        self._bus: MessageBus | None = None

    async def start(self) -> list[AdapterInfo]:
        """Watch, then list. Raises BluetoothUnavailableError without D-Bus or BlueZ."""
        bus = await _system_bus()
        try:
            async with asyncio.timeout(DBUS_TIMEOUT):
                for rule in _MATCHES:
                    await bus.call(Message(
                        destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                        interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                        body=[rule]))
            bus.add_message_handler(self._on_message)
            present = await _managed_adapters(bus)
        except (OSError, TimeoutError, DBusError, BluetoothUnavailableError) as exc:
            bus.disconnect()
            if isinstance(exc, BluetoothUnavailableError):
                raise
            raise BluetoothUnavailableError(f"cannot watch BlueZ's adapters: {exc}") from exc
        self._bus = bus
        return present

    def _on_message(self, message: Message) -> None:
        if message.message_type != MessageType.SIGNAL:
            return
        if message.interface == PROPERTIES and message.member == "PropertiesChanged":
            self._on_properties(message)
            return
        if message.interface != OBJECT_MANAGER:
            return
        path = str(message.body[0]) if message.body else ""
        if message.member == "InterfacesAdded":
            adapter = _adapter(path, message.body[1])
            if adapter is not None:
                _LOGGER.debug("BlueZ added adapter %s (%s)", adapter.name, adapter.address)
                self._on_added(adapter)
        elif message.member == "InterfacesRemoved":
            match = _ADAPTER_PATH.fullmatch(path)
            if match is not None and ADAPTER_IFACE in message.body[1]:
                _LOGGER.debug("BlueZ removed adapter %s", match.group(1))
                self._on_removed(match.group(1))

    def _on_properties(self, message: Message) -> None:
        match = _ADAPTER_PATH.fullmatch(message.path or "")
        if match is None or self._on_powered is None or len(message.body) < 2:
            return
        interface, changed = message.body[0], message.body[1]
        if interface != ADAPTER_IFACE or "Powered" not in changed:
            return
        powered = bool(getattr(changed["Powered"], "value", changed["Powered"]))
        _LOGGER.debug("%s powered %s", match.group(1), "on" if powered else "off")
        self._on_powered(match.group(1), powered)

    async def stop(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.disconnect()

    async def __aenter__(self) -> list[AdapterInfo]:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
