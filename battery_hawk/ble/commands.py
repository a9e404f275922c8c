"""What `battery-hawk scan` and `battery-hawk read` do, against the real BlueZ stack.

Both are one-off commands: they never power-cycle the adapter (only the daemon heals a
stuck one), and they report Bluetooth that is not there in words (ble/diagnose.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from typing import NamedTuple

from battery_hawk.ble.adapters import list_adapters
from battery_hawk.ble.exchange import fetch_reading
from battery_hawk.ble.link import Link, NotifyCallback, Transport
from battery_hawk.ble.radios import RadioSet
from battery_hawk.ble.recovery import RecoverySettings
from battery_hawk.ble.transport import BleakTransport
from battery_hawk.errors import (
    BluetoothUnavailableError,
    ConnectTimeoutError,
    DecodeError,
    TransportError,
)
from battery_hawk.models import Advertisement, Reading
from battery_hawk.protocols import FAMILIES, Driver, Match, get_driver, identify

__all__ = ["ScanResult", "answered_as", "read_command", "scan_adapters", "scan_command"]

# a one-off command reports a stuck or switched-off adapter; only the daemon power-cycles
_NO_RECOVERY = RecoverySettings(enabled=False)
ADVERT_WAIT = 3.0  # seconds to listen for the unit's advert after a read went unanswered


class ScanResult(NamedTuple):
    """One device heard during a scan, and the family it was recognised as (if any)."""

    advertisement: Advertisement
    family: str | None
    reason: str | None  # what gave the family away, e.g. "name 'BM6'"


ProgressCallback = Callable[[int, int], None]
"""Called about once a second while scanning: (devices heard, devices recognised)."""


async def scan_adapters() -> list[str]:
    """The adapters BlueZ has (hci0 first); ["hci0"] when it lists none or cannot be
    asked (that adapter's scan then says what is wrong)."""
    try:
        names = [a.name for a in await list_adapters()]
    except BluetoothUnavailableError:
        names = []
    return names or ["hci0"]


def _scan_transport(adapters: Sequence[str]) -> Transport:
    if len(adapters) == 1:
        return BleakTransport(adapters[0], recovery=_NO_RECOVERY)
    radios = RadioSet()
    for name in adapters:
        radios.add_radio(name, BleakTransport(name, recovery=_NO_RECOVERY))
    return radios


async def scan_command(
    adapter: str | Sequence[str] | None, timeout: float,
    on_progress: ProgressCallback | None = None,
) -> list[ScanResult]:
    """Discover for timeout seconds: recognised devices first, strongest signal first.

    adapter: one adapter (hciN or its MAC), several, or None for every adapter BlueZ
    has (scan_adapters()). With several, each device is shown with the RSSI and the
    name (Advertisement.radio) of the adapter that heard it best. A device counts as
    recognised if any of its advertisements was (a name may come in one advert and the
    manufacturer data in the next).
    """
    if adapter is None:
        adapter = await scan_adapters()
    transport = _scan_transport([adapter] if isinstance(adapter, str) else adapter)
    latest: dict[str, Advertisement] = {}
    matches: dict[str, Match] = {}

    async def listen() -> None:
        async for adv in transport.advertisements():
            latest[adv.address] = adv
            if adv.address not in matches and (match := identify(adv)) is not None:
                matches[adv.address] = match

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    task = asyncio.create_task(listen(), name="scan")
    try:
        while not task.done() and (left := end - loop.time()) > 0:
            if on_progress is not None:
                on_progress(len(latest), len(matches))
            await asyncio.wait({task}, timeout=min(1.0, left))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # raises what stopped the scan (e.g. no adapter)
    if isinstance(transport, RadioSet):  # the adapter that heard each device best
        for address, adv in latest.items():
            heard = transport.hearing(address)
            if heard:
                best = max(heard, key=lambda name: heard[name])
                latest[address] = dataclasses.replace(adv, rssi=heard[best], radio=best)
    results = [
        ScanResult(adv, m.driver.family, m.reason) if (m := matches.get(a)) is not None
        else ScanResult(adv, None, None)
        for a, adv in latest.items()
    ]
    results.sort(key=lambda r: (r.family is None, -(r.advertisement.rssi or -999)))
    return results


class _RecordingLink:
    """A Link that keeps a copy of every notification (to tell what a unit answered)."""

    def __init__(self, link: Link, frames: list[bytes]) -> None:
        self._link, self._frames = link, frames

    @property
    def is_connected(self) -> bool:
        return self._link.is_connected

    async def write(self, char_uuid: str, data: bytes, *, response: bool = True) -> None:
        await self._link.write(char_uuid, data, response=response)

    async def read(self, char_uuid: str) -> bytes:
        return await self._link.read(char_uuid)

    async def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None:
        def keep(frame: bytes) -> None:
            self._frames.append(frame)
            callback(frame)

        await self._link.start_notify(char_uuid, keep)

    async def stop_notify(self, char_uuid: str) -> None:
        await self._link.stop_notify(char_uuid)

    async def wait_disconnected(self) -> None:
        await self._link.wait_disconnected()


class _Recording:
    """A Transport that records whether a link came up and what it notified."""

    def __init__(self, inner: BleakTransport) -> None:
        self.inner = inner
        self.frames: list[bytes] = []
        self.connected = False

    @contextlib.asynccontextmanager
    async def connect(self, address: str, *, timeout: float | None = None) -> AsyncIterator[Link]:
        async with self.inner.connect(address, timeout=timeout) as link:
            self.connected = True
            yield _RecordingLink(link, self.frames)

    def advertisements(self) -> AsyncIterator[Advertisement]:
        return self.inner.advertisements()

    async def scan(self, timeout: float) -> list[Advertisement]:
        return await self.inner.scan(timeout)


def answered_as(frames: list[bytes], asked: Driver) -> str | None:
    """The family (type name) other than asked's whose decoder reads one of frames."""
    for family in FAMILIES:
        if isinstance(asked, family) or family.notify_uuid is None:
            continue
        try:
            probe = family()  # under the family's public key
        except ValueError:
            continue  # a family that needs the owner's key cannot be probed
        for frame in frames:
            try:
                probe.decode(frame)
            except DecodeError:
                continue
            return family.family
    return None


async def _advert_of(transport: BleakTransport, address: str) -> Advertisement | None:
    adverts = transport.advertisements()
    try:
        async with asyncio.timeout(ADVERT_WAIT):
            async for adv in adverts:
                if adv.address == address:
                    return adv
    except (TimeoutError, TransportError):
        return None
    finally:
        await adverts.aclose()  # type: ignore[attr-defined]
    return None


async def _what_answered(
    transport: BleakTransport, address: str, driver: Driver, frames: list[bytes]
) -> str:
    asked = driver.family
    other = answered_as(frames, driver)
    if other is not None:
        return (f"the unit answered in the {other} format: it is a {other}, not a {asked}; "
                f"try `battery-hawk read {address} --type {other}`")
    if frames:
        return (f"the unit answered {len(frames)} frame(s) in no format battery-hawk knows "
                f"(a wrong --key, or not a {asked}); `battery-hawk scan` shows what it is "
                "recognised as")
    said = f"the unit did not answer a {asked} request at all"
    adv = await _advert_of(transport, address)
    match = identify(adv) if adv is not None else None
    if adv is not None and match is not None and match.driver.family != asked:
        return (f"{said}; it advertises as {adv.name or address!r}, which is a "
                f"{match.driver.family} ({match.reason}): try "
                f"`battery-hawk read {address} --type {match.driver.family}`")
    return (f"{said} (another family, a wrong key, or the phone app holds it); "
            "run `battery-hawk scan` to see what it is recognised as")


async def read_command(
    adapter: str,
    address: str,
    type_name: str,
    key: bytes | None = None,
    timeout: float = 20.0,
) -> Reading:
    """One Reading from one device: passive types wait for an advert, others connect.

    Raises UnknownDeviceType for a bad type, ValueError for a bad / missing key,
    TransportError subclasses for radio trouble and DecodeError for frames that do not
    decode. Connecting and reading each get `timeout` seconds. When a unit connected but
    gave no reading, the error says whether it answered in another family's format,
    in none, or not at all, and what to try.
    """
    driver = get_driver(type_name)(key)
    transport = BleakTransport(adapter, connect_timeout=timeout, recovery=_NO_RECOVERY)
    recording = _Recording(transport)
    try:
        return await fetch_reading(recording, address, driver, timeout)
    except (ConnectTimeoutError, DecodeError) as exc:
        if not recording.connected:
            raise
        hint = await _what_answered(transport, address, driver, recording.frames)
        raise type(exc)(f"{exc}; {hint}") from exc
