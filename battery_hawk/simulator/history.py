"""Encoders for the history downloads: what a BM6 / BM7 / BM2 notifies when asked.

The inverse of battery_hawk.protocols.history, built from the layout documented there
(the framing of the captured BM6 page: header, records newest first, trailer with the
framed length). For the fake BlueZ, the tests and bench/history.py. Needs only the
standard library and pycryptodome, like frames.py.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final, NamedTuple

from battery_hawk.protocols._aes import BLOCK
from battery_hawk.simulator.frames import (
    BM2_KEY,
    BM6_KEY,
    bm2_history_count_reply,
    bm2_history_frames,
    leagend_encrypt,
)

__all__ = [
    "StoredRecord",
    "bm2_history_notifications",
    "leagend_history_notifications",
    "leagend_page_plaintext",
]

PAGE_RECORDS: Final = 256
_RECORD: Final = struct.Struct(">L")


class StoredRecord(NamedTuple):
    """What a monitor stored at one 2-minute step (BM2 keeps voltage and cranking only)."""

    voltage: float
    soc: int = 0
    temperature: int = 0
    kind: int = 0
    min_crank_voltage: float = 0.0


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def _pack(record: StoredRecord) -> bytes:
    raw = (
        _clamp(record.voltage * 100, 1, 0xFFF) << 20
        | _clamp(record.soc, 0, 100) << 12
        | _clamp(record.temperature, 0, 0xFF) << 4
        | (record.kind & 0xF)
    )
    return _RECORD.pack(raw)


def leagend_page_plaintext(oldest_first: Sequence[StoredRecord], pages: int) -> bytes:
    """The decrypted reply to ``d1 55 05 .. NN=pages ..``: whole blocks, trailer last.

    The newest ``pages * 256`` records, newest first, zero-padded to a whole block; the
    trailer starts a block of its own, as in the captured page. Bytes 3..4 of the header
    carry the record count (the captured one-page header ``d1550501 00..`` is consistent
    with that; the parser does not rely on it).
    """
    newest = list(reversed(oldest_first))[: pages * PAGE_RECORDS] if pages > 0 else []
    data = b"".join(_pack(r) for r in newest)
    header = b"\xd1\x55\x05" + min(len(newest), 0xFFFF).to_bytes(2, "big")
    empty = b"\xfe\xfe\xfe"  # the empty-answer marker
    trailer = b"\xff\xfe\xfe" + (len(data) + 9).to_bytes(3, "big") if data else empty
    padded = data + bytes(-len(data) % BLOCK)
    return header.ljust(BLOCK, b"\x00") + padded + trailer.ljust(BLOCK, b"\x00")


def leagend_history_notifications(
    oldest_first: Sequence[StoredRecord],
    pages: int,
    key: bytes = BM6_KEY,
    *,
    blocks_per_notification: int = 1,
) -> list[bytes]:
    """The encrypted notifications of one BM6/BM7 page reply (each block its own message)."""
    plain = leagend_page_plaintext(oldest_first, pages)
    blocks = [leagend_encrypt(plain[i : i + BLOCK], key) for i in range(0, len(plain), BLOCK)]
    step = max(1, blocks_per_notification)
    return [b"".join(blocks[i : i + step]) for i in range(0, len(blocks), step)]


def bm2_history_notifications(
    oldest_first: Sequence[StoredRecord], key: bytes = BM2_KEY
) -> tuple[bytes, list[bytes]]:
    """A BM2's ``e7`` count reply and the notifications of its ``e3`` download."""
    items = [(r.voltage, r.min_crank_voltage, r.kind) for r in oldest_first]
    return bm2_history_count_reply(len(items), key), bm2_history_frames(items, key)
