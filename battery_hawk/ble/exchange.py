"""Getting Readings out of a Link with a Driver. bleak-free: works on any Link.

The coordinator calls these; the bleak transport and the simulator both provide Links.
A garbage frame raises DecodeError (the caller counts it); a frame the driver marks
NotAReading (an echo, a version reply) is skipped; a dropped link raises
DeviceDisconnectedError; no answer in time raises ConnectTimeoutError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any

from battery_hawk.ble.link import Link, Transport
from battery_hawk.errors import (
    ConnectTimeoutError,
    DecodeError,
    DeviceDisconnectedError,
    NotAReading,
    TransportError,
)
from battery_hawk.models import Advertisement, Reading
from battery_hawk.protocols.base import Driver, Mode

__all__ = [
    "fetch_reading",
    "query_firmware",
    "read_reading",
    "reading_from_advertisement",
    "stream_readings",
    "wait_for_advert_reading",
]

_LOGGER = logging.getLogger(__name__)


async def _next_frame(
    link: Link, frames: asyncio.Queue[bytes], dropped: asyncio.Future[None]
) -> bytes:
    """The next notified frame, or DeviceDisconnectedError once the link drops."""
    if not frames.empty():
        return frames.get_nowait()
    getter: asyncio.Future[bytes] = asyncio.ensure_future(frames.get())
    waiting: set[asyncio.Future[Any]] = {getter, dropped}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    raise DeviceDisconnectedError("link dropped while waiting for a notification")


def _uuid(driver: Driver, attr: str) -> str:
    value: str | None = getattr(driver, attr)
    if value is None:
        raise ValueError(f"{driver.family} driver declares no {attr}")
    return value


async def read_reading(link: Link, driver: Driver, timeout: float) -> Reading:
    """One Reading from a POLL or READ device over an open link, within timeout seconds."""
    try:
        async with asyncio.timeout(timeout):
            if driver.mode is Mode.READ:
                return driver.decode(await link.read(_uuid(driver, "read_uuid")))
            if driver.mode is not Mode.POLL:
                raise ValueError(f"{driver.family} is {driver.mode}, not polled or read")
            return await _poll(link, driver)
    except TimeoutError as exc:
        if not link.is_connected:
            raise DeviceDisconnectedError(f"{driver.family}: link dropped during the read") from exc
        raise ConnectTimeoutError(f"{driver.family}: no reading within {timeout:.1f} s") from exc


async def _poll(link: Link, driver: Driver) -> Reading:
    notify_uuid = _uuid(driver, "notify_uuid")
    frames: asyncio.Queue[bytes] = asyncio.Queue()
    dropped = asyncio.ensure_future(link.wait_disconnected())
    try:
        await link.start_notify(notify_uuid, frames.put_nowait)
        try:
            await link.write(_uuid(driver, "write_uuid"), driver.poll_command(), response=True)
            while True:
                frame = await _next_frame(link, frames, dropped)
                try:
                    return driver.decode(frame)
                except NotAReading as skip:
                    _LOGGER.debug("%s: skipped frame %s (%s)", driver.family, frame.hex(), skip)
        finally:
            if link.is_connected:
                with contextlib.suppress(TransportError):
                    await link.stop_notify(notify_uuid)
    finally:
        dropped.cancel()


async def stream_readings(
    link: Link,
    driver: Driver,
    *,
    on_decode_error: Callable[[DecodeError, bytes], None] | None = None,
) -> AsyncGenerator[Reading, None]:
    """Readings a NOTIFY device streams, until the link drops (then the iterator ends).

    A frame that does not decode is passed to on_decode_error (logged at debug level
    if none is given) and the stream goes on. Close it (contextlib.aclosing) when you
    stop early, so notifications are switched off while the link is still up.
    """
    if driver.mode is not Mode.NOTIFY:
        raise ValueError(f"{driver.family} is {driver.mode}, not a notifying device")
    notify_uuid = _uuid(driver, "notify_uuid")
    frames: asyncio.Queue[bytes] = asyncio.Queue()
    dropped = asyncio.ensure_future(link.wait_disconnected())
    try:
        await link.start_notify(notify_uuid, frames.put_nowait)
        while True:
            try:
                frame = await _next_frame(link, frames, dropped)
            except DeviceDisconnectedError:
                return
            try:
                reading = driver.decode(frame)
            except NotAReading:
                continue
            except DecodeError as exc:
                if on_decode_error is not None:
                    on_decode_error(exc, frame)
                else:
                    _LOGGER.debug("%s: undecodable frame %s: %s", driver.family, frame.hex(), exc)
                continue
            yield reading
    finally:
        dropped.cancel()
        if link.is_connected:
            with contextlib.suppress(TransportError):
                await link.stop_notify(notify_uuid)


def reading_from_advertisement(adv: Advertisement, driver: Driver) -> Reading:
    """Decode a PASSIVE device's advertisement (DecodeError / NotAReading as decode())."""
    return driver.decode(driver.advert_payload(adv))


async def wait_for_advert_reading(
    transport: Transport, address: str, driver: Driver, timeout: float
) -> tuple[Advertisement, Reading]:
    """The first advertisement of address that decodes into a Reading, within timeout.

    Adverts that carry no reading are skipped. On timeout: the last DecodeError if the
    device was heard but never decoded, else ConnectTimeoutError.
    """
    address = address.upper()
    last_error: DecodeError | None = None
    adverts = transport.advertisements()
    try:
        async with asyncio.timeout(timeout):
            async for adv in adverts:
                if adv.address != address:
                    continue
                try:
                    return adv, reading_from_advertisement(adv, driver)
                except NotAReading:
                    continue
                except DecodeError as exc:
                    last_error = exc
    except TimeoutError:
        pass
    finally:
        aclose = getattr(adverts, "aclose", None)
        if aclose is not None:
            await aclose()
    if last_error is not None:
        raise last_error
    raise ConnectTimeoutError(f"{address}: no {driver.family} advertisement within {timeout} s")


async def fetch_reading(
    transport: Transport, address: str, driver: Driver, timeout: float
) -> Reading:
    """One Reading however the family delivers it: wait for an advert (PASSIVE), or
    connect and poll / read / take the first notification. Connecting and reading
    each get timeout seconds; the link is closed before returning.
    """
    if driver.mode is Mode.PASSIVE:
        _adv, reading = await wait_for_advert_reading(transport, address, driver, timeout)
        return reading
    async with transport.connect(address, timeout=timeout) as link:
        if driver.mode is not Mode.NOTIFY:
            return await read_reading(link, driver, timeout)
        try:
            async with (
                asyncio.timeout(timeout),
                contextlib.aclosing(stream_readings(link, driver)) as readings,
            ):
                async for reading in readings:
                    return reading
        except TimeoutError:
            raise ConnectTimeoutError(
                f"{address}: no {driver.family} notification within {timeout} s"
            ) from None
    raise DeviceDisconnectedError(f"{address}: link dropped before the first notification")


async def query_firmware(link: Link, driver: Driver, timeout: float) -> str:
    """The firmware version of a device whose driver can ask for it (BM6 / BM7).

    Uses the driver's firmware_command() and firmware_version(frame); ValueError for a
    driver without them.
    """
    command = getattr(driver, "firmware_command", None)
    parse = getattr(driver, "firmware_version", None)
    if command is None or parse is None:
        raise ValueError(f"{driver.family} has no firmware version query")
    notify_uuid = _uuid(driver, "notify_uuid")
    frames: asyncio.Queue[bytes] = asyncio.Queue()
    dropped = asyncio.ensure_future(link.wait_disconnected())
    try:
        async with asyncio.timeout(timeout):
            await link.start_notify(notify_uuid, frames.put_nowait)
            try:
                await link.write(_uuid(driver, "write_uuid"), command(), response=True)
                while True:
                    frame = await _next_frame(link, frames, dropped)
                    try:
                        return str(parse(frame))
                    except DecodeError:
                        continue  # a stray reading or echo: wait for the version reply
            finally:
                if link.is_connected:
                    with contextlib.suppress(TransportError):
                        await link.stop_notify(notify_uuid)
    except TimeoutError as exc:
        raise ConnectTimeoutError(f"{driver.family}: no firmware reply in {timeout} s") from exc
    finally:
        dropped.cancel()
