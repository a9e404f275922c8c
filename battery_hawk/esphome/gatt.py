"""A device's GATT table as a proxy reports it: characteristic UUID -> handles (pure).

A proxy addresses characteristics by their ATT handle, our drivers by UUID. The table is
built once per connection from the services the proxy lists
(BluetoothGATTGetServicesResponse). Property bits are the characteristic properties of
the Bluetooth Core Specification (Vol 3 Part G §3.3.1.1); the Client Characteristic
Configuration descriptor is UUID 0x2902 (§3.3.3.3), written 01 00 to enable
notifications and 02 00 for indications.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from battery_hawk.errors import TransportError

__all__ = ["CCCD_UUID", "PROP_INDICATE", "PROP_NOTIFY", "Characteristic", "GattTable"]

PROP_READ = 0x02
PROP_WRITE_NO_RESPONSE = 0x04
PROP_WRITE = 0x08
PROP_NOTIFY = 0x10
PROP_INDICATE = 0x20
CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"
ENABLE_NOTIFY = b"\x01\x00"
ENABLE_INDICATE = b"\x02\x00"
DISABLE = b"\x00\x00"


class _Descriptor(Protocol):
    uuid: str
    handle: int


class _Char(Protocol):
    uuid: str
    handle: int
    properties: int

    @property
    def descriptors(self) -> Iterable[_Descriptor]: ...


class _Service(Protocol):
    @property
    def characteristics(self) -> Iterable[_Char]: ...


@dataclass(frozen=True, slots=True)
class Characteristic:
    """One characteristic: its value handle, property bits and CCCD handle (None if none)."""

    uuid: str
    handle: int
    properties: int
    cccd: int | None = None

    @property
    def subscribe_value(self) -> bytes:
        """What to write to the CCCD to subscribe: notifications if offered, else indications."""
        return ENABLE_NOTIFY if self.properties & PROP_NOTIFY else ENABLE_INDICATE


class GattTable:
    """The characteristics of one connected device, by lower-case 128-bit UUID."""

    def __init__(self, address: str, chars: Mapping[str, Characteristic]) -> None:
        self.address = address
        self._chars = dict(chars)

    @classmethod
    def from_services(cls, address: str, services: Iterable[_Service]) -> GattTable:
        """From aioesphomeapi's BluetoothGATTService models (uuid, handle, properties,
        descriptors). A UUID listed twice keeps its first handle."""
        chars: dict[str, Characteristic] = {}
        for service in services:
            for char in service.characteristics:
                cccd = next((d.handle for d in char.descriptors
                             if d.uuid.lower() == CCCD_UUID), None)
                chars.setdefault(char.uuid.lower(),
                                 Characteristic(char.uuid.lower(), char.handle,
                                                char.properties, cccd))
        return cls(address, chars)

    def __len__(self) -> int:
        return len(self._chars)

    def get(self, uuid: str) -> Characteristic:
        """The characteristic; TransportError if the device has none with this UUID."""
        char = self._chars.get(uuid.lower())
        if char is None:
            raise TransportError(f"{self.address}: no characteristic {uuid} "
                                 f"(the device offers {len(self._chars)})")
        return char
