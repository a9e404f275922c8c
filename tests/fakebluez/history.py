"""History-answering behaviour for FakeBlueZ devices, with a clock the test advances.

DeviceMemory keeps what one fake BM2 / BM6 / BM7 "stored": one record per 2 minutes of
device time. ``advance(minutes)`` lets device time pass (a record per 2 minutes, the
live reading's values); every change re-installs the fake's scripted responders, so the
next history request is answered with the memory as it is now:

- BM6 / BM7: a ``d1 55 05`` request with page count NN in byte 7 gets the newest NN
  pages (battery_hawk.simulator.history.leagend_history_notifications), next to the
  live ``d1 55 07`` / ``d1 55 01`` answers of families.py;
- BM2: ``e7 01`` gets the count reply, ``e3 00 00`` + count the framed download (the
  0xF5 stream of families.py keeps running alongside).

``corrupt_next_page()`` makes the answers carry a page that lost a block; ``cut_pages()``
makes them stop before the trailer (the fake then just goes quiet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from battery_hawk.protocols.history import MAX_PAGES
from battery_hawk.simulator.history import (
    StoredRecord,
    bm2_history_notifications,
    leagend_history_notifications,
)
from tests.fakebluez.peripherals import uuid16

if TYPE_CHECKING:
    from battery_hawk.models import Reading
    from tests.fakebluez.controller import FakeBlueZ

__all__ = ["DeviceMemory", "StoredRecord", "add_history"]

WRITE = uuid16(0xFFF3)
NOTIFY = uuid16(0xFFF4)
BLOCKS_PER_NOTIFICATION = 4  # 64-byte notifications, as with a raised ATT MTU


@dataclass
class DeviceMemory:
    """The stored records of one fake monitor, oldest first, and how it answers."""

    fake: FakeBlueZ
    address: str
    family: str
    live: Reading
    records: list[StoredRecord] = field(default_factory=list)
    corrupt: bool = False
    cut: bool = False

    @property
    def key(self) -> bytes:
        return self.fake._keys[self.address]

    def stored(self, reading: Reading) -> StoredRecord:
        return StoredRecord(
            voltage=reading.voltage or 0.0,
            soc=round(reading.soc or 0),
            temperature=max(0, round(reading.temperature or 0)),
            min_crank_voltage=round((reading.voltage or 0.0) - 1.5, 2),
        )

    def advance(self, minutes: float, reading: Reading | None = None) -> None:
        """Let device time pass: one record per 2 minutes with the (new) live values."""
        if reading is not None:
            self.live = reading
        self.records += [self.stored(self.live)] * int(minutes // 2)
        self.install()

    def set_records(self, records: list[StoredRecord]) -> None:
        self.records = list(records)
        self.install()

    def corrupt_next_page(self, corrupt: bool = True) -> None:
        self.corrupt = corrupt
        self.install()

    def cut_pages(self, cut: bool = True) -> None:
        self.cut = cut
        self.install()

    def _shape(self, notes: list[bytes]) -> list[bytes]:
        if self.cut:
            return notes[: max(1, len(notes) // 2)]
        if self.corrupt and len(notes) > 2:
            return [notes[0], *notes[2:]]  # a lost notification: the length will not match
        return notes

    def install(self) -> None:
        fake, address = self.fake, self.address
        fake.clear_responders(address)
        if self.family == "bm2":
            count_reply, notes = bm2_history_notifications(self.records, self.key)
            fake.add_responder(address, WRITE, NOTIFY, [count_reply], prefix=b"\xe7\x01",
                               key=self.key)
            fake.add_responder(address, WRITE, NOTIFY, self._shape(notes),
                               prefix=b"\xe3\x00\x00", key=self.key)
            return
        fake.set_leagend_reading(address, self.live)  # clears, then the live answers
        for pages in range(1, MAX_PAGES + 2):
            notes = leagend_history_notifications(
                self.records, pages, self.key, blocks_per_notification=BLOCKS_PER_NOTIFICATION
            )
            prefix = b"\xd1\x55\x05\x00\x00\x00\x00" + bytes([pages])
            fake.add_responder(address, WRITE, NOTIFY, self._shape(notes), prefix=prefix,
                               key=self.key)


def add_history(
    fake: FakeBlueZ,
    address: str,
    family: str,
    live: Reading,
    *,
    minutes: float = 0,
    bm2_interval: float = 0.05,
) -> DeviceMemory:
    """Add a BM2 / BM6 / BM7 that remembers ``minutes`` of ``live`` and answers history."""
    if family == "bm2":
        fake.add_bm2(address, [live.voltage or 0.0], interval=bm2_interval)
    else:
        fake.add_leagend_poll(address, live, family=family)
    memory = DeviceMemory(fake, address.upper(), family, live)
    memory.advance(minutes)
    return memory
