"""An open connection to one device through an ESPHome Bluetooth proxy (the Link contract).

Every call is bounded by the link's operation timeout, and aioesphomeapi's errors leave
only as TransportError subclasses. Notifications need two steps on a proxy with remote
caching (ESPHome 2022.12 and later): the proxy registers for the handle, and the client
writes the Client Characteristic Configuration descriptor itself, since the proxy kept no
descriptor table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aioesphomeapi.client import APIClient

from battery_hawk.ble.link import NotifyCallback
from battery_hawk.errors import DeviceDisconnectedError, TransportError
from battery_hawk.esphome._errors import API_FAILURES, translate
from battery_hawk.esphome.gatt import DISABLE, PROP_INDICATE, PROP_NOTIFY, GattTable

__all__ = ["EsphomeLink"]

_LOGGER = logging.getLogger(__name__)

DISCONNECT_TIMEOUT = 5.0

_StopNotify = tuple[Callable[[], Coroutine[Any, Any, None]], Callable[[], None]]


class EsphomeLink:
    """A device connected through a proxy; addressed by its 48-bit MAC as an integer."""

    def __init__(self, client: APIClient, address: str, mac: int, where: str,
                 timeout: float) -> None:
        self.address = address
        self.mac = mac
        self.where = where  # "AA:BB:..:01 via proxy 10.0.0.5:6053", for messages
        self.timeout = timeout
        self.mtu = 0
        self.error = 0  # the proxy's connection error code (ESP-IDF GATT codes)
        self._client = client
        self._table: GattTable | None = None
        self._connected = False
        self._dropped = asyncio.Event()
        self._notifies: dict[str, _StopNotify] = {}
        self._unsubscribe: Callable[[], None] | None = None

    # --- called by the transport ---------------------------------------------------

    def on_state(self, connected: bool, mtu: int, error: int) -> None:
        """The proxy's BluetoothDeviceConnectionResponse for this device."""
        self.mtu, self.error = mtu, error
        if connected and not error:
            self._connected = True
            return
        if self._connected:
            _LOGGER.debug("%s: link dropped (error %d)", self.where, error)
        self._connected = False
        self._dropped.set()

    def attach(self, table: GattTable, unsubscribe: Callable[[], None]) -> None:
        self._table = table
        self._unsubscribe = unsubscribe

    def drop(self) -> None:
        """The proxy went away: the link is gone with it."""
        self._connected = False
        self._dropped.set()

    @property
    def established(self) -> bool:
        """The proxy said connected (GATT services may not be known yet)."""
        return self._connected

    # --- the Link contract -----------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected and self._table is not None and not self._dropped.is_set()

    def _live(self, doing: str) -> GattTable:
        if not self.is_connected or self._table is None:
            raise DeviceDisconnectedError(f"{self.where}: {doing} on a dropped link")
        return self._table

    def _translate(self, exc: BaseException, doing: str) -> TransportError:
        if self._dropped.is_set():
            return DeviceDisconnectedError(f"{self.where}: link dropped during {doing}")
        return translate(exc, self.where, doing)

    async def write(self, char_uuid: str, data: bytes, *, response: bool = True) -> None:
        char = self._live("write").get(char_uuid)
        try:
            async with asyncio.timeout(self.timeout):
                await self._client.bluetooth_gatt_write(self.mac, char.handle, bytes(data),
                                                        response, timeout=self.timeout)
        except API_FAILURES as exc:
            raise self._translate(exc, f"write {char_uuid}") from exc

    async def read(self, char_uuid: str) -> bytes:
        char = self._live("read").get(char_uuid)
        try:
            async with asyncio.timeout(self.timeout):
                return bytes(await self._client.bluetooth_gatt_read(
                    self.mac, char.handle, timeout=self.timeout))
        except API_FAILURES as exc:
            raise self._translate(exc, f"read {char_uuid}") from exc

    async def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None:
        char = self._live("start_notify").get(char_uuid)
        if not char.properties & (PROP_NOTIFY | PROP_INDICATE):
            raise TransportError(f"{self.where}: {char_uuid} neither notifies nor indicates")
        if char.cccd is None:
            raise TransportError(f"{self.where}: {char_uuid} has no configuration "
                                 "descriptor (0x2902) to enable notifications with")

        def deliver(_handle: int, data: bytearray) -> None:
            callback(bytes(data))

        uuid = char_uuid.lower()
        try:
            async with asyncio.timeout(self.timeout):
                self._notifies[uuid] = await self._client.bluetooth_gatt_start_notify(
                    self.mac, char.handle, deliver, timeout=self.timeout)
                await self._client.bluetooth_gatt_write_descriptor(
                    self.mac, char.cccd, char.subscribe_value, timeout=self.timeout)
        except API_FAILURES as exc:
            self._forget_notify(uuid)
            raise self._translate(exc, f"start_notify {char_uuid}") from exc

    async def stop_notify(self, char_uuid: str) -> None:
        char = self._live("stop_notify").get(char_uuid)
        uuid = char_uuid.lower()
        stop = self._notifies.pop(uuid, None)
        if stop is None:
            return
        try:
            async with asyncio.timeout(self.timeout):
                if char.cccd is not None:
                    await self._client.bluetooth_gatt_write_descriptor(
                        self.mac, char.cccd, DISABLE, timeout=self.timeout)
                await stop[0]()
        except API_FAILURES as exc:
            stop[1]()
            raise self._translate(exc, f"stop_notify {char_uuid}") from exc

    async def wait_disconnected(self) -> None:
        await self._dropped.wait()

    def _forget_notify(self, uuid: str) -> None:
        stop = self._notifies.pop(uuid, None)
        if stop is not None:
            stop[1]()

    async def close(self) -> None:
        """Disconnect through the proxy, bounded, never raising (the link may be gone).

        The proxy frees the connection slot when the device is disconnected; if the
        answer does not come in time, the request has still been sent.
        """
        for uuid in list(self._notifies):
            self._forget_notify(uuid)
        if self._unsubscribe is not None:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            with contextlib.suppress(*API_FAILURES):
                unsubscribe()
        was_dropped = self._dropped.is_set()
        self._connected = False
        self._dropped.set()
        if was_dropped and not self._client.is_connected:
            return
        try:
            async with asyncio.timeout(DISCONNECT_TIMEOUT):
                await self._client.bluetooth_device_disconnect(self.mac,
                                                               timeout=DISCONNECT_TIMEOUT)
        except API_FAILURES as exc:
            _LOGGER.debug("%s: disconnect failed: %r", self.where, exc)
            with contextlib.suppress(*API_FAILURES):
                self._client.bluetooth_device_disconnect_no_wait(self.mac)
