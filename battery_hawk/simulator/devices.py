"""Simulated devices behind the Transport/Link contract of battery_hawk.ble.link.

Every device emits the real byte frames of its family (battery_hawk.simulator.frames),
driven by a BatteryModel, so the real drivers decode them:

- BM6 / BM7 decrypt the written command and notify the encrypted reply (and answer the
  firmware request);
- BM2 stream 0xF5 notifications while subscribed, and serve the history download;
- Victron advertise encrypted instant-readout manufacturer data (no connection);
- Battery Service devices answer a read of Battery Level.

Cheap enough for a few hundred devices at one reading per device per second, and
deterministic for a given seed (apart from asyncio scheduling).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import ClassVar

from battery_hawk.errors import DeviceDisconnectedError, DeviceNotFoundError, TransportError
from battery_hawk.models import Advertisement, Reading
from battery_hawk.protocols.bas import BATTERY_LEVEL_UUID, BATTERY_SERVICE_UUID
from battery_hawk.protocols.base import uuid16
from battery_hawk.protocols.victron import VICTRON_MANUFACTURER_ID
from battery_hawk.simulator import frames
from battery_hawk.simulator.battery import BatteryModel, BatteryProfile, Chemistry

__all__ = [
    "FAMILIES",
    "SimBM2",
    "SimBM7",
    "SimBatteryService",
    "SimDevice",
    "SimLeagendPoll",
    "SimLink",
    "SimTransport",
    "SimVictron",
    "build_fleet",
]

Clock = Callable[[], float]
NotifyCallback = Callable[[bytes], None]

LEAGEND_SERVICE = uuid16(0xFFF0)
WRITE_UUID = uuid16(0xFFF3)
NOTIFY_UUID = uuid16(0xFFF4)


@dataclass(eq=False)
class SimDevice:
    """One simulated monitor: identity, key and battery. Subclasses add the GATT behaviour."""

    family: ClassVar[str] = ""
    address: str
    name: str
    battery: BatteryModel
    key: bytes | None = None
    rssi: int = -60
    reachable: bool = True

    def reading(self, now: float) -> Reading:
        """What the battery looks like at `now` (advances the model)."""
        return self.battery.step(now)

    def advertisement(self, now: float) -> Advertisement:
        return Advertisement(self.address, name=self.name, rssi=self.rssi)

    def on_write(self, link: SimLink, char_uuid: str, data: bytes) -> None:
        raise TransportError(f"{self.address}: characteristic {char_uuid} is not writable")

    def on_read(self, link: SimLink, char_uuid: str) -> bytes:
        raise TransportError(f"{self.address}: characteristic {char_uuid} is not readable")

    def on_subscribe(self, link: SimLink, char_uuid: str) -> None:
        """Called after a notify callback is registered."""


def _leagend_advertisement(device: SimDevice, now: float, *, mac_reversed: bool) -> Advertisement:
    """A BM2/BM6 advert; with the encrypted reading block if the device advertises one."""
    data: dict[int, bytes] = {}
    if getattr(device, "advertises_reading", False) and device.key is not None:
        data = frames.leagend_advert(device.reading(now), device.address, device.key,
                                     mac_reversed=mac_reversed)
    return Advertisement(device.address, name=device.name, rssi=device.rssi,
                         manufacturer_data=data, service_uuids=(LEAGEND_SERVICE,))


@dataclass(eq=False)
class SimLeagendPoll(SimDevice):
    """BM6 / BM7: answers the encrypted d1 55 07 request with the encrypted reply."""

    family: ClassVar[str] = "bm6"
    echo: bool = False  # notify the d1 55 07 ff echo before the reply, as some units do
    advertises_reading: bool = False  # put the encrypted voltage/SoC block in adverts

    def advertisement(self, now: float) -> Advertisement:
        return _leagend_advertisement(self, now, mac_reversed=False)

    def on_write(self, link: SimLink, char_uuid: str, data: bytes) -> None:
        if char_uuid != WRITE_UUID:
            super().on_write(link, char_uuid, data)
        assert self.key is not None
        command = frames.leagend_command(data, self.key)
        if command is frames.LeagendCommand.VOLTAGE:
            if self.echo:
                link.notify_soon(NOTIFY_UUID, frames.bm6_echo(self.key))
            reply = frames.bm6_reply(self.reading(link.now()), self.key)
            link.notify_soon(NOTIFY_UUID, reply)
        elif command is frames.LeagendCommand.FIRMWARE:
            link.notify_soon(NOTIFY_UUID, frames.bm6_firmware_reply(self.key))
        # Anything else is ignored, as the real units do.


@dataclass(eq=False)
class SimBM7(SimLeagendPoll):
    family: ClassVar[str] = "bm7"


@dataclass(eq=False)
class SimBM2(SimDevice):
    """BM2: streams 0xF5 notifications while subscribed; serves the history download."""

    family: ClassVar[str] = "bm2"
    interval: float = 1.0
    history: list[tuple[float, float, int]] = field(default_factory=list)
    advertises_reading: bool = False  # put the encrypted voltage/SoC block in adverts
    _counter: int = field(default=0, init=False, repr=False)

    def advertisement(self, now: float) -> Advertisement:
        return _leagend_advertisement(self, now, mac_reversed=True)

    def next_frame(self, now: float) -> bytes:
        assert self.key is not None
        self._counter = (self._counter + 25) & 0xFFFF  # the captures count up in 25s
        voltage = self.reading(now).voltage or 0.0
        return frames.bm2_voltage(voltage, self.key, self._counter)

    def on_subscribe(self, link: SimLink, char_uuid: str) -> None:
        if char_uuid == NOTIFY_UUID:
            link.start_stream(char_uuid, self.interval, self.next_frame)

    def on_write(self, link: SimLink, char_uuid: str, data: bytes) -> None:
        if char_uuid != WRITE_UUID:
            super().on_write(link, char_uuid, data)
        assert self.key is not None
        command = frames.bm2_command(data, self.key)
        if command is None:
            return
        kind, _count = command
        if kind is frames.Bm2Command.HISTORY_COUNT:
            link.notify_soon(
                NOTIFY_UUID, frames.bm2_history_count_reply(len(self.history), self.key)
            )
        else:
            for frame in frames.bm2_history_frames(self.history, self.key):
                link.notify_soon(NOTIFY_UUID, frame)


@dataclass(eq=False)
class SimVictron(SimDevice):
    """Victron SmartShunt (battery monitor) or SmartSolar: encrypted adverts, no GATT."""

    family: ClassVar[str] = "victron"
    solar: bool = False
    _nonce: int = field(default=0, init=False, repr=False)

    def advertisement(self, now: float) -> Advertisement:
        assert self.key is not None
        self._nonce = (self._nonce + 1) & 0xFFFF
        reading = self.reading(now)
        if self.solar:
            solar_power = max(0.0, (reading.current or 0.0) * (reading.voltage or 0.0))
            reading = Reading(
                voltage=reading.voltage,
                current=max(0.0, reading.current or 0.0),
                solar_power=round(solar_power),
                yield_today=round(now % 86400 / 86400 * 1.5, 2),
                state=reading.state,
            )
            payload = frames.victron_solar_charger(reading, self.key, self._nonce)
        else:
            payload = frames.victron_battery_monitor(reading, self.key, self._nonce)
        return Advertisement(
            self.address,
            name=self.name,
            rssi=self.rssi,
            manufacturer_data={VICTRON_MANUFACTURER_ID: payload},
        )


@dataclass(eq=False)
class SimBatteryService(SimDevice):
    """A generic device with the standard Battery Service."""

    family: ClassVar[str] = "bas"

    def advertisement(self, now: float) -> Advertisement:
        return Advertisement(
            self.address, name=self.name, rssi=self.rssi, service_uuids=(BATTERY_SERVICE_UUID,)
        )

    def on_read(self, link: SimLink, char_uuid: str) -> bytes:
        if char_uuid != BATTERY_LEVEL_UUID:
            return super().on_read(link, char_uuid)
        return frames.bas_level(self.reading(link.now()).soc)


class SimLink:
    """An open connection to one simulated device (fulfils battery_hawk.ble.link.Link)."""

    def __init__(self, device: SimDevice, clock: Clock) -> None:
        self.device = device
        self._clock = clock
        self._callbacks: dict[str, NotifyCallback] = {}
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._closed = asyncio.Event()

    def now(self) -> float:
        return self._clock()

    @property
    def is_connected(self) -> bool:
        return not self._closed.is_set()

    def _check(self) -> None:
        if self._closed.is_set():
            raise DeviceDisconnectedError(f"{self.device.address}: link is down")

    async def write(self, char_uuid: str, data: bytes, *, response: bool = True) -> None:
        self._check()
        self.device.on_write(self, char_uuid.lower(), bytes(data))

    async def read(self, char_uuid: str) -> bytes:
        self._check()
        return self.device.on_read(self, char_uuid.lower())

    async def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None:
        self._check()
        char_uuid = char_uuid.lower()
        self._callbacks[char_uuid] = callback
        self.device.on_subscribe(self, char_uuid)

    async def stop_notify(self, char_uuid: str) -> None:
        char_uuid = char_uuid.lower()
        self._callbacks.pop(char_uuid, None)
        task = self._streams.pop(char_uuid, None)
        if task is not None:
            task.cancel()

    async def wait_disconnected(self) -> None:
        await self._closed.wait()

    # -- device side

    def notify_soon(self, char_uuid: str, frame: bytes) -> None:
        """Deliver a notification after the current write returns, like a real radio."""
        asyncio.get_running_loop().call_soon(self._deliver, char_uuid, frame)

    def _deliver(self, char_uuid: str, frame: bytes) -> None:
        callback = self._callbacks.get(char_uuid)
        if callback is not None and self.is_connected:
            callback(frame)

    def start_stream(self, char_uuid: str, interval: float, make: Callable[[float], bytes]) -> None:
        """Notify make(now) every `interval` seconds until unsubscribed or disconnected."""
        if char_uuid in self._streams:
            return

        async def stream() -> None:
            while self.is_connected:
                self._deliver(char_uuid, make(self.now()))
                await asyncio.sleep(interval)

        self._streams[char_uuid] = asyncio.get_running_loop().create_task(
            stream(), name=f"sim-stream-{self.device.address}"
        )

    def close(self) -> None:
        """Drop the link (the device went away, or the gateway disconnected)."""
        self._closed.set()
        self._callbacks.clear()
        for task in self._streams.values():
            task.cancel()
        self._streams.clear()


class SimTransport:
    """Scans and connects to simulated devices (fulfils battery_hawk.ble.link.Transport)."""

    def __init__(
        self,
        devices: Iterable[SimDevice],
        *,
        clock: Clock = time.monotonic,
        advert_interval: float = 1.0,
    ) -> None:
        self.devices: dict[str, SimDevice] = {d.address.upper(): d for d in devices}
        self._clock = clock
        self.advert_interval = advert_interval
        self._links: dict[str, set[SimLink]] = {}
        self.connections = 0  # links opened so far, to every device

    @classmethod
    def with_fleet(
        cls,
        count: int,
        *,
        seed: int = 0,
        clock: Clock = time.monotonic,
        advert_interval: float = 1.0,
        bm2_interval: float = 1.0,
    ) -> SimTransport:
        """A transport over build_fleet(count, seed=seed): every family, round robin."""
        fleet = build_fleet(count, seed=seed, start=clock(), bm2_interval=bm2_interval)
        return cls(fleet, clock=clock, advert_interval=advert_interval)

    def _device(self, address: str) -> SimDevice:
        device = self.devices.get(address.upper())
        if device is None or not device.reachable:
            raise DeviceNotFoundError(f"{address}: not found")
        return device

    @asynccontextmanager
    async def _connect(self, address: str) -> AsyncIterator[SimLink]:
        device = self._device(address)
        await asyncio.sleep(0)
        link = SimLink(device, self._clock)
        self.connections += 1
        links = self._links.setdefault(device.address.upper(), set())
        links.add(link)
        try:
            yield link
        finally:
            link.close()
            links.discard(link)

    def connect(
        self, address: str, *, timeout: float | None = None
    ) -> AbstractAsyncContextManager[SimLink]:
        return self._connect(address)

    async def advertisements(self) -> AsyncIterator[Advertisement]:
        """Every reachable device advertises once per advert_interval, forever, each at its
        own moment of the interval: real devices advertise independently, not in step, and
        a fleet advertising all at once would be a burst no radio hears."""
        loop = asyncio.get_running_loop()
        moment = loop.time()
        while True:
            fleet = list(self.devices.values())
            step = self.advert_interval / max(len(fleet), 1)
            for device in fleet:
                if device.reachable:
                    yield device.advertisement(self._clock())
                # on a fixed schedule: sleeping ``step`` each time would drift late
                moment = max(moment + step, loop.time() - self.advert_interval)
                await asyncio.sleep(moment - loop.time())

    async def scan(self, timeout: float) -> list[Advertisement]:
        """One pass: each reachable device's current advertisement (no waiting)."""
        await asyncio.sleep(0)
        return self._snapshot()

    def _snapshot(self) -> list[Advertisement]:
        now = self._clock()
        return [d.advertisement(now) for d in self.devices.values() if d.reachable]

    # -- fault injection

    def drop(self, address: str) -> int:
        """Drop every open link to a device; returns how many were dropped."""
        links = self._links.get(address.upper(), set())
        for link in list(links):
            link.close()
        return len(links)

    def set_reachable(self, address: str, reachable: bool) -> None:
        """An unreachable device neither advertises nor accepts connections."""
        self.devices[address.upper()].reachable = reachable
        if not reachable:
            self.drop(address)


FAMILIES: tuple[str, ...] = ("bm6", "bm7", "bm2", "victron", "bas")

_NAMES = {
    "bm6": "BM6",
    "bm7": "BM300 Pro",
    "bm2": "Battery Monitor",
    "victron": "SmartShunt",
    "bas": "Sim Battery",
}


def _key(rng: random.Random) -> bytes:
    return rng.getrandbits(128).to_bytes(16, "big")


def build_fleet(
    count: int,
    *,
    seed: int = 0,
    families: Sequence[str] = FAMILIES,
    start: float = 0.0,
    bm2_interval: float = 1.0,
) -> list[SimDevice]:
    """`count` devices cycling through `families`, deterministic for a seed.

    Addresses are ``5A:00:00:00:HH:LL`` (index + 1); the BM family use their default
    keys, Victron devices a key derived from the seed (read it from ``device.key``).
    Every third device is a starter battery; every other Victron is a solar charger.
    """
    fleet: list[SimDevice] = []
    for index in range(count):
        family = families[index % len(families)]
        number = index + 1
        address = f"5A:00:00:00:{number >> 8 & 0xFF:02X}:{number & 0xFF:02X}"
        rng = random.Random(f"{seed}:{address}")
        profile = BatteryProfile(
            chemistry=Chemistry.LIFEPO4 if index % 4 == 3 else Chemistry.LEAD_ACID,
            capacity_ah=rng.choice((45.0, 60.0, 74.0, 100.0)),
            starter=index % 3 == 0,
        )
        battery = BatteryModel(profile, rng, start=start)
        name = _NAMES[family]
        device: SimDevice
        if family == "bm6":
            device = SimLeagendPoll(address, name, battery, frames.BM6_KEY)
        elif family == "bm7":
            device = SimBM7(address, name, battery, frames.BM7_KEY)
        elif family == "bm2":
            device = SimBM2(address, name, battery, frames.BM2_KEY, interval=bm2_interval)
        elif family == "victron":
            solar = (index // len(families)) % 2 == 1
            device = SimVictron(
                address, "SmartSolar" if solar else name, battery, _key(rng), solar=solar
            )
        elif family == "bas":
            device = SimBatteryService(address, name, battery)
        else:
            raise ValueError(f"unknown simulated family {family!r}; known: {', '.join(FAMILIES)}")
        device.rssi = -rng.randint(45, 90)
        fleet.append(device)
    return fleet
