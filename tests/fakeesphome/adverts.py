"""An Advertisement as the AD structures a proxy forwards raw (the inverse of the parser).

AD types from the Bluetooth Assigned Numbers (Generic Access Profile): 0x01 flags, 0x03
complete list of 16-bit service UUIDs, 0x07 complete list of 128-bit service UUIDs, 0x09
complete local name, 0x16 service data with a 16-bit UUID, 0x21 service data with a
128-bit UUID, 0xFF manufacturer specific data (company id little-endian first).
"""

from __future__ import annotations

import uuid as uuidlib

from battery_hawk.models import Advertisement

__all__ = ["encode_advertisement"]

_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def _short(uuid: str) -> int | None:
    uuid = uuid.lower()
    if uuid.startswith("0000") and uuid.endswith(_BASE_SUFFIX):
        return int(uuid[4:8], 16)
    return None


def _ad(kind: int, payload: bytes) -> bytes:
    return bytes((len(payload) + 1, kind)) + payload


def encode_advertisement(adv: Advertisement) -> bytes:
    """The advertising data (and scan response) carrying what adv holds."""
    out = bytearray(_ad(0x01, b"\x06"))  # LE General Discoverable, BR/EDR not supported
    if adv.name:
        out += _ad(0x09, adv.name.encode())
    shorts = [s for u in adv.service_uuids if (s := _short(u)) is not None]
    longs = [u for u in adv.service_uuids if _short(u) is None]
    if shorts:
        out += _ad(0x03, b"".join(s.to_bytes(2, "little") for s in shorts))
    if longs:
        out += _ad(0x07, b"".join(uuidlib.UUID(u).bytes[::-1] for u in longs))
    for uuid, data in adv.service_data.items():
        short = _short(uuid)
        if short is not None:
            out += _ad(0x16, short.to_bytes(2, "little") + data)
        else:
            out += _ad(0x21, uuidlib.UUID(uuid).bytes[::-1] + data)
    for company, data in adv.manufacturer_data.items():
        out += _ad(0xFF, company.to_bytes(2, "little") + data)
    return bytes(out)
