"""What one ESPHome proxy hears, handed on to every listener (EsphomeTransport uses it).

A proxy sends its raw advertisements in batches (BluetoothLERawAdvertisementsResponse);
each entry is decoded (adverts.py), remembered per address (HeardTable: the RSSI and
address type a connection needs) and put in the bounded queue of every open stream; a
connection that waits for a device's first advertisement is woken by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from battery_hawk.ble.link import latest_per_device
from battery_hawk.errors import DecodeError
from battery_hawk.esphome.adverts import Heard, HeardTable, decode_raw_advertisement
from battery_hawk.models import Advertisement

__all__ = ["ADVERT_QUEUE_SIZE", "Listening"]

_LOGGER = logging.getLogger(__name__)

ADVERT_QUEUE_SIZE = 256  # advertisements a stream may fall behind before they are dropped


class Listening:
    """The advertisements of one proxy: what it heard, and the streams that listen."""

    def __init__(self, label: str) -> None:
        """label: the proxy's host:port, for the log."""
        self.label = label
        self.heard = HeardTable()
        self.dropped = 0  # advertisements a full stream queue had no room for
        self._queues: set[asyncio.Queue[Advertisement]] = set()
        self._waiting: dict[str, asyncio.Event] = {}  # addresses a connection waits to hear

    def on_adverts(self, message: Any) -> None:
        """One BluetoothLERawAdvertisementsResponse: note and hand on each entry."""
        now = time.monotonic()
        for raw in message.advertisements:
            try:
                adv = decode_raw_advertisement(raw.address, raw.rssi, raw.data)
            except DecodeError as exc:
                _LOGGER.debug("proxy %s: %s", self.label, exc)
                continue
            self.heard.note(adv.address, Heard(raw.rssi, raw.address_type, now))
            waiting = self._waiting.pop(adv.address, None)
            if waiting is not None:
                waiting.set()
            for queue in self._queues:
                try:
                    queue.put_nowait(adv)
                except asyncio.QueueFull:
                    self.dropped += 1

    async def wait_for(self, address: str, seconds: float) -> Heard | None:
        """What was heard of address (upper case), waiting at most seconds for it."""
        heard = self.heard.get(address)
        if heard is not None or seconds <= 0:
            return heard
        event = self._waiting.setdefault(address, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
        return self.heard.get(address)

    async def stream(self, before: Callable[[], Awaitable[None]]
                     ) -> AsyncGenerator[Advertisement, None]:
        """Every advertisement from now on, after awaiting before() (starting the session)."""
        await before()
        queue: asyncio.Queue[Advertisement] = asyncio.Queue(ADVERT_QUEUE_SIZE)
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)

    async def latest(self, timeout: float, before: Callable[[], Awaitable[None]]
                     ) -> list[Advertisement]:
        """The latest advertisement of each device heard within timeout seconds."""
        return list((await latest_per_device(self.stream(before), timeout)).values())
