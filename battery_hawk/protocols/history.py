"""The Leagend monitors' own memory: history downloads of BM2, BM6 and BM7, sans I/O.

A monitor keeps one record every 2 minutes. A download is a short conversation: the
gateway writes a request, the monitor notifies framed data. HistorySession is that
conversation as a pure state machine (STYLE.md 1): ``request()`` gives the first
encrypted command, ``feed(notification)`` takes each notification and returns the next
command to write (or None), ``done`` says when the closing marker arrived, and
``records(downloaded_at)`` turns the data into timestamped HistoryRecords, oldest first.
The BLE side (battery_hawk.ble.history) only moves bytes.

Facts, with their public sources
================================

Record timing (all families): records are 2 minutes apart and carry no clock; the
newest one is stamped with the download time and each older one 2 minutes earlier.
marcomc/BMGateway (``docs/2026-04-25-bm-protocol-research-handoff.md``, "Order And
Cadence") showed it by matching four captures 20 minutes apart: offsets of 10-11
records, 0 mismatches; KrystianD/bm2-battery-monitor (``client.py``) anchors BM2 items
at "now" the same way.

BM6 / BM7 (``d1 55 05``), from marcomc/BMGateway (``docs/2026-04-25-bm-protocol-
research-handoff.md``, ``docs/2026-04-25-bm300-bm7-integration-notes.md``,
``drivers/bm200.py``, ``drivers/bm300.py``), which downloads it into its own database:

- request: the 16-byte plaintext ``d1 55 05 00 00 00 00 NN 00..00``, encrypted like the
  live request (family key, AES-CBC, zero IV). Byte 7 ``NN`` is a cumulative page count:
  ``01`` the newest page, ``02`` the newest two, ... One page is 256 records (8 h 32 min).
  Verified on BM6/BM200 for 01..05 (256-record increments, exact overlap) and on a
  BM7/BM300 Pro for 01..03 (256, 512, 769 records). BM6 saturated at about 1456-1522
  records (about 2 days) for NN >= 6. Other bytes (4 on BM6, 6 on BM7) select segments
  whose order and timing are not proven; they are not used.
- reply: each notification is one or more 16-byte blocks, each decrypted on its own
  (``decode_bm6_frame_payloads``). First a block starting ``d1 55 05`` (its other bytes
  are not decoded), optionally a ``ff ff fe`` start block, then the records, then a
  trailer ``ff fe fe`` + 3-byte big-endian framed length = data bytes + 9. The captured
  full page ended ``fffefe00040900000000000000000000``: 0x409 - 9 = 1024 bytes = 256
  records. A zero length, or a ``fe fe fe`` marker, is an empty answer. Live
  ``d1 55 07`` blocks may interleave and are skipped. BMGateway finds the trailer inside
  a block too; here it is looked for at record (4-byte) boundaries, and a trailer that
  starts at byte 12 is allowed to carry its length into the next block (no public
  capture shows where a device puts it when the data does not fill whole blocks).
- records are newest first, 4 bytes, nibbles ``vvv ss tt p``: ``vvv`` centivolts, ``ss``
  state of charge in percent, ``tt`` temperature in whole degrees Celsius, ``p`` a record
  type whose meaning is unknown (0, 2, 4 seen). ``52b53170`` = 13.23 V, 83 %, 23 °C.
  All-zero records are padding and dropped. How a temperature below 0 °C is stored is
  not confirmed by any public capture; ``tt`` is read as an unsigned byte.

BM2 (``e7`` / ``e3``), from KrystianD/bm2-battery-monitor (``client.py``,
``.docs/reverse_engineering.md``); see battery_hawk.protocols.bm2 for the frame parser:

- write ``e7 01``; the reply is ``e7`` + a 3-byte big-endian count. Zero means no
  history. Otherwise wait about a second ("otherwise BM2 ignores the following
  packet") and write ``e3 00 00`` + the count as 4 bytes big-endian.
- the monitor notifies ``ff ff fe``, data frames, then ``ff fe fe`` + 3-byte framed
  length (data + 9). Items are 4 bytes, ``vvv k ccc t``, oldest first: voltage and
  minimum cranking voltage in centivolts, ``k`` unused, ``t`` a record type. The BM2
  keeps no state of charge or temperature.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from battery_hawk.errors import DecodeError
from battery_hawk.models import Reading
from battery_hawk.protocols._aes import BLOCK, ZeroIvCbc
from battery_hawk.protocols.base import Driver
from battery_hawk.protocols.bm2 import (
    BM2,
    HISTORY_COUNT_PACKET,
    HISTORY_COUNT_REQUEST,
    HISTORY_END,
    history_download_request,
    parse_history,
    parse_history_count,
)

__all__ = [
    "HISTORY_FAMILIES",
    "HISTORY_INTERVAL",
    "MAX_PAGES",
    "PAGE_RECORDS",
    "BM2History",
    "HistoryRecord",
    "HistorySession",
    "LeagendPages",
    "history_session",
    "leagend_history_request",
    "pages_for",
    "parse_leagend_blocks",
]

HISTORY_INTERVAL: Final = timedelta(minutes=2)
PAGE_RECORDS: Final = 256
MAX_PAGES: Final = 3  # about 25.6 h: the whole of what the units were shown to keep
HISTORY_FAMILIES: Final = frozenset({"bm2", "bm6", "bm7"})

REQUEST_PREFIX: Final = b"\xd1\x55\x05"
LIVE_PREFIX: Final = b"\xd1\x55\x07"
START_MARKER: Final = b"\xff\xff\xfe"
TRAILER: Final = b"\xff\xfe\xfe"
EMPTY_MARKER: Final = b"\xfe\xfe\xfe"
FRAMING: Final = 9  # what the trailer's length counts besides the data
TRAILER_SIZE: Final = 6  # ff fe fe + 3-byte length
RECORD: Final = struct.Struct(">L")
ZERO_RECORD: Final = bytes(RECORD.size)


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One stored record: when (estimated, see the module docstring) and what.

    voltage and min_crank_voltage in V, soc in %, temperature in °C; a field the family
    does not store is None. kind is the record-type nibble, kept raw (meaning unknown).
    """

    timestamp: datetime
    voltage: float
    soc: float | None = None
    temperature: float | None = None
    min_crank_voltage: float | None = None
    kind: int = 0

    def reading(self) -> Reading:
        """The record as a Reading (the measured fields only)."""
        return Reading(voltage=self.voltage, soc=self.soc, temperature=self.temperature)


def pages_for(span: timedelta) -> int:
    """BM6/BM7 pages (1..MAX_PAGES) whose records reach ``span`` back from now."""
    records = int(span / HISTORY_INTERVAL) + 2  # +1 for the newest, +1 for partial steps
    return max(1, min(MAX_PAGES, -(-records // PAGE_RECORDS)))


def leagend_history_request(pages: int) -> bytes:
    """The 16-byte BM6/BM7 plaintext asking for the newest ``pages`` pages."""
    if not 1 <= pages <= 0xFF:
        raise ValueError(f"history page count must be 1..255, got {pages}")
    request = bytearray(BLOCK)
    request[:3] = REQUEST_PREFIX
    request[7] = pages
    return bytes(request)


def _uint24(data: bytes) -> int:
    return int.from_bytes(data[:3], "big")


def _record(raw: int, timestamp: datetime) -> HistoryRecord:
    soc = (raw >> 12) & 0xFF
    if soc > 100:
        raise DecodeError(f"history record {raw:08x} has a state of charge of {soc} %")
    return HistoryRecord(
        timestamp=timestamp,
        voltage=(raw >> 20) / 100,
        soc=float(soc),
        temperature=float((raw >> 4) & 0xFF),
        kind=raw & 0x0F,
    )


def parse_leagend_blocks(
    blocks: list[bytes], downloaded_at: datetime, *, family: str = "bm6"
) -> list[HistoryRecord]:
    """HistoryRecords, oldest first, from the decrypted 16-byte blocks of one BM6/BM7 reply.

    Raises DecodeError when the reply has no ``d1 55 05`` header or no trailer, when its
    length does not match the data, or when a record is impossible (SoC over 100 %).
    """
    data = bytearray()
    started = False
    declared: int | None = None
    for index, block in enumerate(blocks):
        if len(block) != BLOCK:
            raise DecodeError(f"{family} history block must be 16 bytes, got {len(block)}")
        if not started:
            started = block[:3] == REQUEST_PREFIX
            continue
        if block[:3] in (START_MARKER, LIVE_PREFIX):
            continue
        end = _trailer_at(block)
        if end is None:
            data += block
            continue
        data += block[:end]
        # a trailer after the last record of a block may carry its length into the next
        marker = block[end:] + (blocks[index + 1] if index + 1 < len(blocks) else b"")
        if marker[:3] == EMPTY_MARKER:
            declared = 0
        elif len(marker) >= TRAILER_SIZE:
            declared = _uint24(marker[3:TRAILER_SIZE])
        break
    if not started:
        raise DecodeError(f"{family} history reply has no d1 55 05 header (wrong key?)")
    if declared is None:
        raise DecodeError(f"{family} history reply has no ff fe fe trailer (cut short?)")
    length = max(0, declared - FRAMING)
    if length % RECORD.size or length > len(data) or len(data) - length >= BLOCK:
        raise DecodeError(
            f"{family} history trailer says {length} data bytes, {len(data)} arrived"
        )
    raws = [raw for (raw,) in RECORD.iter_unpack(bytes(data[:length])) if raw]
    # newest first on the wire: record i is i steps older than the download
    records = [_record(raw, downloaded_at - i * HISTORY_INTERVAL) for i, raw in enumerate(raws)]
    records.reverse()
    return records


def _trailer_at(block: bytes) -> int | None:
    for offset in range(0, BLOCK, RECORD.size):
        if block[offset : offset + 3] in (TRAILER, EMPTY_MARKER):
            return offset
    return None


class HistorySession(Protocol):
    """One history download's conversation; see the module docstring."""

    family: str

    @property
    def done(self) -> bool: ...

    @property
    def data_bytes(self) -> int:
        """History data received so far (what the size bound is checked against)."""
        ...

    @property
    def pause(self) -> bool:
        """Whether the device needs a pause before the command feed() returned."""
        ...

    @property
    def announced_bytes(self) -> int | None:
        """The most history data this download can bring, once known."""
        ...

    def request(self) -> bytes: ...

    def feed(self, notification: bytes) -> bytes | None: ...

    def records(self, downloaded_at: datetime) -> list[HistoryRecord]: ...


class LeagendPages:
    """A BM6 / BM7 ``d1 55 05`` download of the newest ``pages`` pages."""

    pause = False

    def __init__(self, key: bytes, pages: int = 1, *, family: str = "bm6") -> None:
        self.family = family
        self.pages = pages
        self._aes = ZeroIvCbc(key)
        self._request = self._aes.encrypt(leagend_history_request(pages))
        self._blocks: list[bytes] = []
        self._started = False
        self._done = False
        self._tail_pending = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def data_bytes(self) -> int:
        return max(0, len(self._blocks) - 1) * BLOCK

    @property
    def announced_bytes(self) -> int | None:
        return self.pages * PAGE_RECORDS * RECORD.size

    def request(self) -> bytes:
        return self._request

    def feed(self, notification: bytes) -> bytes | None:
        if len(notification) % BLOCK or not notification:
            raise DecodeError(
                f"{self.family} history notification of {len(notification)} bytes "
                "is not whole 16-byte blocks"
            )
        for i in range(0, len(notification), BLOCK):
            block = self._aes.decrypt(notification[i : i + BLOCK])
            if not self._started:
                # frames before our header are stray live replies or echoes
                self._started = block[:3] == REQUEST_PREFIX
                if not self._started:
                    continue
            self._blocks.append(block)
            if self._tail_pending:  # the block that carries the trailer's length
                self._done = True
                break
            end = _trailer_at(block) if len(self._blocks) > 1 else None
            if end is not None:
                if block[end : end + 3] == TRAILER and end + TRAILER_SIZE > BLOCK:
                    self._tail_pending = True
                    continue
                self._done = True
                break
        return None

    def records(self, downloaded_at: datetime) -> list[HistoryRecord]:
        return parse_leagend_blocks(self._blocks, downloaded_at, family=self.family)


class BM2History:
    """A BM2 ``e7`` / ``e3`` download (the whole memory: no page selector is known)."""

    family = "bm2"

    def __init__(self, driver: BM2) -> None:
        self._driver = driver
        self._frames: list[bytes] = []
        self._count: int | None = None
        self._done = False
        self.pause = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def count(self) -> int | None:
        """The item count the monitor announced (None before its e7 reply)."""
        return self._count

    @property
    def data_bytes(self) -> int:
        return len(self._frames) * BLOCK

    @property
    def announced_bytes(self) -> int | None:
        return None if self._count is None else self._count * RECORD.size

    def request(self) -> bytes:
        return self._driver.encrypt(HISTORY_COUNT_REQUEST)

    def feed(self, notification: bytes) -> bytes | None:
        plain = self._driver.decrypt(notification)
        if self._count is None:
            if plain[:1] != bytes([HISTORY_COUNT_PACKET]):
                return None  # a live 0xF5 frame before the count reply
            self._count = parse_history_count(plain)
            if self._count == 0:
                self._done = True
                return None
            self.pause = True
            return self._driver.encrypt(history_download_request(self._count))
        self._frames.append(plain)
        if plain[:3] == HISTORY_END and len(self._frames) > 1:
            self._done = True
        return None

    def records(self, downloaded_at: datetime) -> list[HistoryRecord]:
        if self._count == 0:
            return []
        return [
            HistoryRecord(
                timestamp=point.timestamp,
                voltage=point.voltage,
                min_crank_voltage=point.min_crank_voltage,
                kind=point.kind,
            )
            for point in parse_history(self._frames, downloaded_at)
        ]


def history_session(driver: Driver, pages: int = 1) -> HistorySession:
    """The download conversation for a driver's family; ValueError for other families."""
    if isinstance(driver, BM2):
        return BM2History(driver)
    if driver.family in ("bm6", "bm7") and driver.key is not None:
        return LeagendPages(driver.key, pages, family=driver.family)
    raise ValueError(f"{driver.family} monitors keep no history battery-hawk can read")
