"""Leagend BM2 ("Battery Monitor", "ZX-1689"): unsolicited encrypted notifications.

Facts, with their public sources:

- key ``leagend\\xff\\xfe1882466``, AES-128-CBC zero IV, notify fff4 / write fff3:
  KrystianD/bm2-battery-monitor (``.docs/reverse_engineering.md``, ``encryption.py``).
  Its capture ``3627d57495cb945e11d392c800a28bfa`` decrypts to ``f55081 6400fa 00..`` =
  12.88 V, which the tests reproduce.
- packet type ``0xF5``: the first 12 bits after the type byte are centivolts (ibid.).
  The rest is firmware-specific and not decoded: KrystianD's unit sends ``64 00fa 00..``
  (bytes 6..15 zero), the unit of the Domoticz forum (topic 28938) ``2d 020a 03 7b 00..``
  (bytes 6..7 non-zero). What every public capture shares, and so what a frame must
  show, is one 16-byte block whose first byte is a BM2 packet type (``f5`` reading,
  ``e7`` history count, ``ff ff fe`` / ``ff fe fe`` history markers). A wrong key turns
  every frame into noise, so it is caught on the type byte of (almost) every frame; the
  one frame in 256 whose noise starts with ``f5`` cannot be told from a reading by any
  rule all firmwares satisfy.
- advertisements: an encrypted block with voltage and SoC (see leagend_advert).
- advertised names "Battery Monitor", "Li Battery Monitor", "ZX-1689": doubleagent.net,
  "BM2 - Reversing the BLE protocol of the BM2 Battery Monitor".
- history (KrystianD ``client.py``): write ``e7 01``; the reply is ``e7`` + a 3-byte
  big-endian item count. Then write ``e3 00 00`` + the count as 4 bytes big-endian; the
  monitor notifies a frame beginning ``ff ff fe``, raw data frames, and a frame beginning
  ``ff fe fe`` whose bytes 3..5 give the framed length (data + 9). Each item is 4 bytes,
  nibbles ``vvv k ccc t``: voltage and minimum cranking voltage in centivolts, ``k``
  unused, ``t`` a record type; items are 2 minutes apart, the last one the newest.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Final

from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import Advertisement, Reading
from battery_hawk.protocols._aes import ZeroIvCbc
from battery_hawk.protocols.base import Driver, Mode, uuid16
from battery_hawk.protocols.leagend_advert import (
    ADVERT_FIELDS,
    BM2_IBEACON_UUID,
    decode_advert,
    ibeacon_uuid,
)

__all__ = [
    "BM2",
    "BM2_KEY",
    "HISTORY_COUNT_REQUEST",
    "HISTORY_INTERVAL",
    "HistoryPoint",
    "history_download_request",
    "parse_history",
    "parse_history_count",
]

BM2_KEY: Final = b"leagend\xff\xfe1882466"

VOLTAGE_PACKET: Final = 0xF5
HISTORY_COUNT_PACKET: Final = 0xE7
HISTORY_START: Final = b"\xff\xff\xfe"
HISTORY_END: Final = b"\xff\xfe\xfe"
HISTORY_FRAMING: Final = 9  # the start marker (3) and the end marker with its length (6)
HISTORY_INTERVAL: Final = timedelta(minutes=2)

HISTORY_COUNT_REQUEST: Final = b"\xe7\x01"
HISTORY_DOWNLOAD: Final = struct.Struct(">3sL")  # e3 00 00, count
HISTORY_ITEM: Final = struct.Struct(">HH")  # vvvk, ccct

# Decrypted 0xF5 packet: 0 type, 1..2 voltage (top 12 bits, centivolts), 3..15
# firmware-specific (not decoded).
VOLTAGE: Final = struct.Struct(">BH13x")

NAMES: Final = ("BM2", "BATTERY MONITOR", "LI BATTERY MONITOR", "ZX-1689")


def is_live_reading(plain: bytes) -> bool:
    """Whether a decrypted BM2 frame is a live 0xF5 reading (the rule every firmware meets)."""
    return len(plain) == 16 and plain[0] == VOLTAGE_PACKET


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One stored BM2 history item."""

    timestamp: datetime
    voltage: float
    min_crank_voltage: float
    kind: int


def _uint24(data: bytes) -> int:
    return int.from_bytes(data[:3], "big")


def parse_history_count(plain: bytes) -> int:
    """The item count in a decrypted ``e7`` reply."""
    if len(plain) < 4 or plain[0] != HISTORY_COUNT_PACKET:
        raise DecodeError("not a BM2 history count reply (e7 + 3-byte count)")
    return _uint24(plain[1:4])


def history_download_request(count: int) -> bytes:
    """The plaintext ``e3 00 00`` + 4-byte big-endian count that starts the download."""
    if not 0 <= count <= 0xFFFFFFFF:
        raise ValueError(f"history count out of range: {count}")
    return HISTORY_DOWNLOAD.pack(b"\xe3\x00\x00", count)


def parse_history(plain_frames: Iterable[bytes], downloaded_at: datetime) -> list[HistoryPoint]:
    """Timestamped items from the decrypted frames of one download, oldest first.

    Frames before the ``ff ff fe`` start marker are ignored (live 0xF5 packets may
    interleave); the ``ff fe fe`` end marker's length decides how much data is real.
    """
    data = bytearray()
    started = False
    length: int | None = None
    for frame in plain_frames:
        if not started:
            started = frame[:3] == HISTORY_START
            continue
        if frame[:3] == HISTORY_END and len(frame) >= 6:
            length = _uint24(frame[3:6]) - HISTORY_FRAMING
            break
        if is_live_reading(frame):
            continue  # a live reading that arrived mid-download
        data += frame
    if not started:
        raise DecodeError("BM2 history has no ff ff fe start marker")
    if length is None:
        raise DecodeError("BM2 history has no ff fe fe end marker")
    if length < 0 or length % HISTORY_ITEM.size or length > len(data):
        raise DecodeError(f"BM2 history length {length} does not fit {len(data)} data bytes")
    count = length // HISTORY_ITEM.size
    points = []
    for index, (vk, ct) in enumerate(HISTORY_ITEM.iter_unpack(bytes(data[:length]))):
        points.append(
            HistoryPoint(
                timestamp=downloaded_at - (count - 1 - index) * HISTORY_INTERVAL,
                voltage=(vk >> 4) / 100,
                min_crank_voltage=(ct >> 4) / 100,
                kind=ct & 0x0F,
            )
        )
    return points


class BM2(Driver):
    """Leagend BM2: streams its voltage every second or so while connected."""

    family: ClassVar[str] = "bm2"
    model: ClassVar[str] = "BM2"
    manufacturer: ClassVar[str] = "Leagend"
    mode: ClassVar[Mode] = Mode.NOTIFY
    service_uuid: ClassVar[str | None] = uuid16(0xFFF0)
    write_uuid: ClassVar[str | None] = uuid16(0xFFF3)
    notify_uuid: ClassVar[str | None] = uuid16(0xFFF4)
    default_key: ClassVar[bytes | None] = BM2_KEY
    advert_fields: ClassVar[tuple[str, ...]] = ADVERT_FIELDS
    names: ClassVar[tuple[str, ...]] = NAMES
    beacon_uuid: ClassVar[str | None] = BM2_IBEACON_UUID

    def __init__(self, key: bytes | None = None) -> None:
        super().__init__(key)
        assert self.key is not None
        self._aes = ZeroIvCbc(self.key)

    @classmethod
    def match(cls, adv: Advertisement) -> str | None:
        name = (adv.name or "").strip().upper()
        if name and (name in NAMES or name.endswith("BM2")):
            return f"name {adv.name!r}"
        if ibeacon_uuid(adv) == BM2_IBEACON_UUID:
            return f"iBeacon uuid {BM2_IBEACON_UUID} (BM2)"
        return None

    def decode_advert(self, adv: Advertisement) -> Reading:
        return decode_advert(self._aes, adv, mac_reversed=True, family=self.family)

    def decrypt(self, frame: bytes) -> bytes:
        """The plaintext of one notification."""
        return self._aes.decrypt(frame)

    def encrypt(self, plain: bytes) -> bytes:
        """A command ready to write to fff3 (zero-padded to 16 bytes)."""
        return self._aes.encrypt(plain)

    def decode(self, frame: bytes) -> Reading:
        if len(frame) != 16:
            raise DecodeError(f"bm2 notification must be 16 bytes, got {len(frame)}")
        plain = self._aes.decrypt(frame)
        kind, raw = VOLTAGE.unpack(plain)
        if kind != VOLTAGE_PACKET:
            if kind == HISTORY_COUNT_PACKET or plain[:3] in (HISTORY_START, HISTORY_END):
                raise NotAReading(f"bm2 history packet {plain[:3].hex()}")
            raise DecodeError(
                f"bm2 packet type {kind:#04x} is none of f5, e7, ff (wrong key?)"
            )
        return Reading(voltage=(raw >> 4) / 100)

    def history_count_command(self) -> bytes:
        """The encrypted ``e7 01`` request."""
        return self._aes.encrypt(HISTORY_COUNT_REQUEST)

    def history_download_command(self, count: int) -> bytes:
        """The encrypted ``e3 00 00`` + count request."""
        return self._aes.encrypt(history_download_request(count))

    def history_count(self, frame: bytes) -> int:
        """The item count in an encrypted ``e7`` reply."""
        return parse_history_count(self._aes.decrypt(frame))

    def history(self, frames: Iterable[bytes], downloaded_at: datetime) -> list[HistoryPoint]:
        """Timestamped items from the encrypted notifications of one download."""
        return parse_history((self._aes.decrypt(f) for f in frames), downloaded_at)
