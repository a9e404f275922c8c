"""Raw advertisements of an ESPHome Bluetooth proxy into our Advertisement model (pure).

A proxy with the RAW_ADVERTISEMENTS feature batches what it hears into
BluetoothLERawAdvertisementsResponse messages: each entry carries the device address as a
48-bit integer, the RSSI, the address type and ``data``, the advertising data and scan
response as sent over the air (AD structures: length, type, payload; Bluetooth Core
Specification Vol 3 Part C §11). bluetooth-data-tools parses those structures.
"""

from __future__ import annotations

from bluetooth_data_tools import int_to_bluetooth_address, parse_advertisement_data_bytes

from battery_hawk.errors import DecodeError
from battery_hawk.models import Advertisement

__all__ = ["decode_raw_advertisement"]


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
