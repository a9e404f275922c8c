"""FakeEsphomeProxy: a small ESPHome Bluetooth proxy speaking the native API over TCP.

It answers what a proxy answers (hello, login, ping, device info with the Bluetooth proxy
feature flags and the proxy's MAC), forwards the advertisements of simulated devices
(battery_hawk.simulator's SimDevice: the real frames of each family) as raw
advertisement batches, counts its connection slots and reports them, and serves GATT
for the devices it connects to: reads, writes, the CCCD write that switches
notifications on, and notifications back. Messages are aioesphomeapi's own protobuf
classes, numbered by its MESSAGE_TYPE_TO_PROTO table; framing.py does plaintext and
Noise.

Test controls: ``rssi`` (what this proxy hears of each device), ``busy`` (slots taken
by others), ``kill()`` / ``start()`` (gone and back on the same port), ``hang()``
(connections stay open, nothing is answered).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from aioesphomeapi import api_pb2
from aioesphomeapi.core import MESSAGE_TYPE_TO_PROTO
from bluetooth_data_tools import int_to_bluetooth_address, mac_to_int
from google.protobuf.message import Message

from battery_hawk.errors import TransportError
from battery_hawk.simulator.devices import SimDevice, SimLink
from tests.fakeesphome.adverts import encode_advertisement
from tests.fakeesphome.framing import (
    FrameError,
    NoiseServerFramer,
    PlainServerFramer,
    ServerFramer,
)
from tests.fakeesphome.gatt import FakeChar, layout, services_message

__all__ = ["FEATURES", "FakeEsphomeProxy"]

_LOGGER = logging.getLogger(__name__)
_ID_OF: dict[type[Any], int] = {cls: num for num, cls in MESSAGE_TYPE_TO_PROTO.items()}
pb: Any = api_pb2

# BluetoothProxyFeature (aioesphomeapi/model.py): passive scan, active connections,
# remote caching, raw advertisements
FEATURES = 0x01 | 0x02 | 0x04 | 0x20
API_VERSION = (1, 12)
ADDRESS_TYPE_PUBLIC = 0
CONN_FAIL_ESTABLISH = 0x3E  # ESP_GATT_CONN_FAIL_ESTABLISH (aioesphomeapi/ble_defs.py)
GATT_ERROR = 0x85  # ESP_GATT_ERROR


class _Peripheral:
    """One device connection held by the proxy for a client."""

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.link = SimLink(device, time.monotonic)
        self.chars: dict[int, FakeChar] = {}
        self.cccds: dict[int, FakeChar] = {}
        for service in layout(device):
            for char in service.chars:
                self.chars[char.handle] = char
                if char.cccd is not None:
                    self.cccds[char.cccd] = char
        self.forwarded: set[int] = set()  # handles the client asked the proxy to forward


class _Client:
    """One API client connected to the proxy."""

    def __init__(self, proxy: FakeEsphomeProxy, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, framer: ServerFramer) -> None:
        self.proxy = proxy
        self.reader = reader
        self.writer = writer
        self.framer = framer
        self.peripherals: dict[int, _Peripheral] = {}
        self.adverts: asyncio.Task[None] | None = None
        self.wants_slots = False
        self.authenticated = proxy.password is None

    def send(self, message: Message) -> None:
        if self.writer.is_closing() or self.proxy.hung:
            return
        self.writer.write(self.framer.encode(_ID_OF[type(message)],
                                             message.SerializeToString()))

    def close(self) -> None:
        if self.adverts is not None:
            self.adverts.cancel()
        for mac in list(self.peripherals):
            self.release(mac)
        self.writer.transport.abort()

    def release(self, mac: int) -> None:
        peripheral = self.peripherals.pop(mac, None)
        if peripheral is not None:
            peripheral.link.close()
            self.proxy.slots_changed()


class FakeEsphomeProxy:
    """An ESPHome Bluetooth proxy on 127.0.0.1 serving simulated devices."""

    def __init__(
        self,
        devices: Iterable[SimDevice] = (),
        *,
        name: str = "fake-proxy",
        mac: str = "AA:BB:CC:00:00:01",
        encryption_key: str | None = None,
        password: str | None = None,
        slots: int = 3,
        advert_interval: float = 0.2,
        features: int = FEATURES,
        esphome_version: str = "2025.11.0",
        hello_delay: float = 0.0,
    ) -> None:
        self.devices: dict[str, SimDevice] = {d.address.upper(): d for d in devices}
        self.name = name
        self.mac = mac
        self.psk = base64.b64decode(encryption_key) if encryption_key else None
        self.password = password
        self.limit = slots
        self.busy = 0  # slots taken by other clients (Home Assistant, say)
        self.advert_interval = advert_interval
        self.features = features
        self.esphome_version = esphome_version
        self.hello_delay = hello_delay  # s before hello is answered (a slow Wi-Fi link)
        # what this proxy hears of a device (default: the device's rssi; None: not at all)
        self.rssi: dict[str, int | None] = {}
        self.hung = False
        self.flapping = False  # hang up as each session is set up (a proxy that reboots)
        self.port = 0
        self.sessions = 0  # API sessions that got past hello
        self.refused_keys = 0
        self.connects: dict[str, int] = {}  # device connections made, per address
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        # ESPHome forwards advertisements to one API client at a time (bluetooth_proxy.cpp)
        self.subscriber: _Client | None = None
        self.refused_subscriptions = 0

    # --- life ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (again) on 127.0.0.1, on the same port as before if there was one."""
        self.hung = False
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def kill(self) -> None:
        """Gone at once: the listener and every client connection, as a power cut."""
        if self._server is not None:
            self._server.close()
            for client in list(self._clients):
                client.close()
            await self._server.wait_closed()
            self._server = None
        self._clients.clear()
        self.subscriber = None
        handlers, self._handlers = set(self._handlers), set()
        if handlers:  # the aborted connections end them; cancel what does not end
            _, pending = await asyncio.wait(handlers, timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def hang(self) -> None:
        """Keep every connection open but answer nothing (a wedged ESP32)."""
        self.hung = True

    @property
    def free(self) -> int:
        taken = sum(len(c.peripherals) for c in self._clients) + self.busy
        return max(0, self.limit - taken)

    def slots_changed(self) -> None:
        for client in self._clients:
            if client.wants_slots:
                client.send(pb.BluetoothConnectionsFreeResponse(free=self.free,
                                                                limit=self.limit))

    def set_busy(self, busy: int) -> None:
        self.busy = busy
        self.slots_changed()

    # --- one client ------------------------------------------------------------------

    def _framer(self) -> ServerFramer:
        if self.psk is None:
            return PlainServerFramer()
        return NoiseServerFramer(self.psk, self.name, self.mac.replace(":", "").lower())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        framer = self._framer()
        client = _Client(self, reader, writer, framer)
        self._clients.add(client)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await framer.handshake(reader, writer)
            while True:
                msg_type, payload = await framer.read(reader)
                if self.hung:
                    continue
                cls = MESSAGE_TYPE_TO_PROTO.get(msg_type)
                if cls is None:
                    continue
                message = cls()
                message.ParseFromString(payload)
                await self._handle(client, message)
                await writer.drain()
        except FrameError as exc:
            if isinstance(framer, NoiseServerFramer) and framer.refused_key:
                self.refused_keys += 1
            _LOGGER.debug("fake proxy: %s", exc)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # asyncio's stream server (3.11) logs a handler that ends cancelled as an error
            pass
        finally:
            self._clients.discard(client)
            if self.subscriber is client:
                self.subscriber = None
            client.close()
            if task is not None:
                self._handlers.discard(task)

    async def _handle(self, client: _Client, message: Any) -> None:
        kind = type(message).__name__
        if kind == "HelloRequest":
            await asyncio.sleep(self.hello_delay)
            self.sessions += 1
            client.send(pb.HelloResponse(api_version_major=API_VERSION[0],
                                         api_version_minor=API_VERSION[1],
                                         server_info=f"{self.name} (ESPHome "
                                         f"{self.esphome_version})", name=self.name))
        elif kind == "AuthenticationRequest":
            ok = self.password is None or message.password == self.password
            client.authenticated = ok
            client.send(pb.AuthenticationResponse(invalid_password=not ok))
        elif kind == "PingRequest":
            client.send(pb.PingResponse())
        elif kind == "DisconnectRequest":
            client.send(pb.DisconnectResponse())
            await client.writer.drain()
            client.close()
        elif not client.authenticated:
            client.close()  # ESPHome hangs up on requests before a good login
        elif kind == "DeviceInfoRequest":
            client.send(pb.DeviceInfoResponse(
                name=self.name, mac_address=self.mac, bluetooth_mac_address=self.mac,
                esphome_version=self.esphome_version, model="esp32dev",
                uses_password=self.password is not None,
                bluetooth_proxy_feature_flags=self.features,
                api_encryption_supported=self.psk is not None))
        elif kind == "ListEntitiesRequest":
            client.send(pb.ListEntitiesDoneResponse())
        elif kind == "SubscribeBluetoothLEAdvertisementsRequest" and self.flapping:
            client.close()  # the session was set up: now the proxy reboots
        elif kind == "SubscribeBluetoothLEAdvertisementsRequest":
            if self.subscriber not in (None, client):
                self.refused_subscriptions += 1  # ESPHome logs it and answers nothing
                return
            self.subscriber = client
            if client.adverts is None:
                client.adverts = asyncio.get_running_loop().create_task(
                    self._advertise(client), name="fake-proxy-adverts")
        elif kind == "UnsubscribeBluetoothLEAdvertisementsRequest":
            if self.subscriber is client:
                self.subscriber = None
            if client.adverts is not None:
                client.adverts.cancel()
                client.adverts = None
        elif kind == "SubscribeBluetoothConnectionsFreeRequest":
            client.wants_slots = True
            client.send(pb.BluetoothConnectionsFreeResponse(free=self.free, limit=self.limit))
        elif kind == "BluetoothDeviceRequest":
            await self._device_request(client, message)
        else:
            await self._gatt(client, message)

    async def _advertise(self, client: _Client) -> None:
        while True:
            if not self.hung:
                now = time.monotonic()
                batch = pb.BluetoothLERawAdvertisementsResponse()
                for address, device in self.devices.items():
                    rssi = self.rssi.get(address, device.rssi)
                    if not device.reachable or rssi is None:
                        continue
                    adv = device.advertisement(now)
                    batch.advertisements.add(
                        address=mac_to_int(address),
                        rssi=rssi,
                        address_type=ADDRESS_TYPE_PUBLIC,
                        data=encode_advertisement(adv))
                if batch.advertisements:
                    client.send(batch)
            await asyncio.sleep(self.advert_interval)

    async def _device_request(self, client: _Client, message: Any) -> None:
        mac = message.address
        connect_types = (pb.BLUETOOTH_DEVICE_REQUEST_TYPE_CONNECT_V3_WITH_CACHE,
                         pb.BLUETOOTH_DEVICE_REQUEST_TYPE_CONNECT_V3_WITHOUT_CACHE)
        if message.request_type in connect_types:
            device = self.devices.get(int_to_bluetooth_address(mac))
            if self.free < 1 or mac in client.peripherals:
                client.send(pb.BluetoothDeviceConnectionResponse(address=mac, connected=False))
            elif device is None or not device.reachable:
                client.send(pb.BluetoothDeviceConnectionResponse(
                    address=mac, connected=False, error=CONN_FAIL_ESTABLISH))
            else:
                client.peripherals[mac] = _Peripheral(device)
                self.connects[device.address] = self.connects.get(device.address, 0) + 1
                client.send(pb.BluetoothDeviceConnectionResponse(address=mac, connected=True,
                                                                 mtu=23))
                self.slots_changed()
        elif message.request_type == pb.BLUETOOTH_DEVICE_REQUEST_TYPE_DISCONNECT:
            client.release(mac)
            client.send(pb.BluetoothDeviceConnectionResponse(address=mac, connected=False))

    def drop_device(self, address: str) -> None:
        """The device drops its link (out of range): every client is told."""
        mac = mac_to_int(address)
        for client in self._clients:
            if mac in client.peripherals:
                client.release(mac)
                client.send(pb.BluetoothDeviceConnectionResponse(address=mac, connected=False,
                                                                 error=0x13))

    async def _gatt(self, client: _Client, message: Any) -> None:
        kind = type(message).__name__
        mac = getattr(message, "address", None)
        peripheral = client.peripherals.get(mac) if mac is not None else None
        if peripheral is None:
            if mac is not None and kind.startswith("BluetoothGATT"):
                client.send(pb.BluetoothGATTErrorResponse(address=mac,
                                                          handle=getattr(message, "handle", 0),
                                                          error=GATT_ERROR))
            return
        if kind == "BluetoothGATTGetServicesRequest":
            client.send(services_message(mac, layout(peripheral.device)))
            client.send(pb.BluetoothGATTGetServicesDoneResponse(address=mac))
            return
        handle = message.handle
        try:
            if kind == "BluetoothGATTReadRequest":
                data = await peripheral.link.read(peripheral.chars[handle].uuid)
                client.send(pb.BluetoothGATTReadResponse(address=mac, handle=handle, data=data))
            elif kind == "BluetoothGATTWriteRequest":
                await peripheral.link.write(peripheral.chars[handle].uuid, message.data,
                                            response=message.response)
                if message.response:
                    client.send(pb.BluetoothGATTWriteResponse(address=mac, handle=handle))
            elif kind == "BluetoothGATTNotifyRequest":
                if message.enable:
                    peripheral.forwarded.add(handle)
                else:
                    peripheral.forwarded.discard(handle)
                client.send(pb.BluetoothGATTNotifyResponse(address=mac, handle=handle))
            elif kind == "BluetoothGATTWriteDescriptorRequest":
                await self._write_cccd(client, peripheral, mac, peripheral.cccds[handle],
                                       message.data)
                client.send(pb.BluetoothGATTWriteResponse(address=mac, handle=handle))
        except (KeyError, TransportError):
            client.send(pb.BluetoothGATTErrorResponse(address=mac, handle=handle,
                                                      error=GATT_ERROR))

    @staticmethod
    async def _write_cccd(client: _Client, peripheral: _Peripheral, mac: int,
                          char: FakeChar, value: bytes) -> None:
        """01 00 / 02 00 switches the device's notifications on, 00 00 off; what it then
        notifies reaches the client only for handles it asked the proxy to forward."""
        if value[:1] in (b"\x01", b"\x02"):
            def forward(data: bytes, handle: int = char.handle) -> None:
                if handle in peripheral.forwarded:
                    client.send(pb.BluetoothGATTNotifyDataResponse(address=mac, handle=handle,
                                                                   data=data))
            await peripheral.link.start_notify(char.uuid, forward)
        else:
            await peripheral.link.stop_notify(char.uuid)

    async def __aenter__(self) -> FakeEsphomeProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.kill()
