"""Raw advertisements of an ESPHome Bluetooth proxy into our Advertisement model (pure).

A proxy with the RAW_ADVERTISEMENTS feature batches what it hears into
BluetoothLERawAdvertisementsResponse messages: each entry carries the device address as a
48-bit integer, the RSSI, the address type and ``data``, the advertising data and scan
response as sent over the air (AD structures: length, type, payload; Bluetooth Core
Specification Vol 3 Part C §11). bluetooth-data-tools parses those structures.
"""

from __future__ import annotations

from dataclasses import dataclass

from bluetooth_data_tools import int_to_bluetooth_address, parse_advertisement_data_bytes

from battery_hawk.errors import DecodeError
from battery_hawk.models import Advertisement

__all__ = ["Heard", "HeardTable", "decode_raw_advertisement"]


def decode_raw_advertisement(address: int, rssi: int, data: bytes) -> Advertisement:
    """One proxy advertisement: ``address`` the 48-bit MAC as an integer, ``rssi`` in dBm,
    ``data`` the raw AD structures. Raises DecodeError for an address out of range."""
    if not 0 <= address < 1 << 48:
        raise DecodeError(f"advertisement address {address:#x} is not a 48-bit MAC")
    try:
        name, uuids, service_data, manufacturer_data, _tx_power = (
            parse_advertisement_data_bytes(bytes(data)))
    except (ValueError, IndexError) as exc:  # the parser stops at a truncated structure
        raise DecodeError(f"advertisement of {address:#014x}: {exc}") from exc
    return Advertisement(
        int_to_bluetooth_address(address),
        name=name or None,
        rssi=rssi,
        manufacturer_data=dict(manufacturer_data),
        service_data=dict(service_data),
        service_uuids=tuple(uuids),
    )


@dataclass(frozen=True, slots=True)
class Heard:
    """The latest advertisement of one device: RSSI (dBm), address type (0 public,
    1 random; needed to connect through the proxy) and when (monotonic seconds)."""

    rssi: int
    address_type: int
    at: float


class HeardTable:
    """What a proxy heard lately, bounded: a proxy in a busy place hears every phone
    nearby, and phones change their random addresses every few minutes.

    Past ``cap`` addresses, entries older than ``ttl`` seconds go; if that is not enough,
    the oldest half goes.
    """

    def __init__(self, cap: int = 1024, ttl: float = 300.0) -> None:
        if cap < 2:
            raise ValueError("cap must be at least 2")
        self.cap, self.ttl = cap, ttl
        self._heard: dict[str, Heard] = {}

    def note(self, address: str, heard: Heard) -> None:
        if address not in self._heard and len(self._heard) >= self.cap:
            self._prune(heard.at)
        self._heard[address] = heard

    def _prune(self, now: float) -> None:
        fresh = {a: h for a, h in self._heard.items() if now - h.at <= self.ttl}
        if len(fresh) >= self.cap:
            newest = sorted(fresh.items(), key=lambda item: item[1].at)[len(fresh) // 2:]
            fresh = dict(newest)
        self._heard = fresh

    def get(self, address: str) -> Heard | None:
        return self._heard.get(address)

    def clear(self) -> None:
        self._heard.clear()

    def __len__(self) -> int:
        return len(self._heard)
