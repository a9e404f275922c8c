"""The GATT table the fake proxy reports for a simulated device, by family.

Handles are invented but laid out as real servers do (service, characteristic
declaration, value, descriptors in increasing order). Property bits are the Bluetooth
Core Specification's (Vol 3 Part G §3.3.1.1); 0x2902 is the Client Characteristic
Configuration descriptor.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass

from aioesphomeapi import api_pb2

from battery_hawk.protocols.base import uuid16
from battery_hawk.simulator.devices import SimBatteryService, SimBM2, SimDevice, SimLeagendPoll

__all__ = ["FakeChar", "layout", "services_message"]

READ, WRITE_NO_RESPONSE, WRITE, NOTIFY = 0x02, 0x04, 0x08, 0x10
CCCD = uuid16(0x2902)


@dataclass(frozen=True, slots=True)
class FakeChar:
    uuid: str
    handle: int
    properties: int
    cccd: int | None


@dataclass(frozen=True, slots=True)
class FakeService:
    uuid: str
    handle: int
    chars: tuple[FakeChar, ...]


def layout(device: SimDevice) -> tuple[FakeService, ...]:
    """The services of a simulated device (none for an advertising-only one)."""
    if isinstance(device, SimLeagendPoll | SimBM2):
        return (FakeService(uuid16(0xFFF0), 0x10, (
            FakeChar(uuid16(0xFFF3), 0x12, WRITE | WRITE_NO_RESPONSE, None),
            FakeChar(uuid16(0xFFF4), 0x14, NOTIFY, 0x15),
        )),)
    if isinstance(device, SimBatteryService):
        return (FakeService(uuid16(0x180F), 0x20, (
            FakeChar(uuid16(0x2A19), 0x22, READ | NOTIFY, 0x23),
        )),)
    return ()


def _split(uuid: str) -> list[int]:
    value = uuidlib.UUID(uuid).int
    return [value >> 64, value & (1 << 64) - 1]


def services_message(mac: int, services: tuple[FakeService, ...]
                     ) -> api_pb2.BluetoothGATTGetServicesResponse:  # type: ignore[name-defined]
    """One BluetoothGATTGetServicesResponse with every service (128-bit UUIDs as two
    64-bit halves, the form every API version understands)."""
    message = api_pb2.BluetoothGATTGetServicesResponse(address=mac)  # type: ignore[attr-defined]
    for service in services:
        pb_service = message.services.add(uuid=_split(service.uuid), handle=service.handle)
        for char in service.chars:
            pb_char = pb_service.characteristics.add(uuid=_split(char.uuid),
                                                     handle=char.handle,
                                                     properties=char.properties)
            if char.cccd is not None:
                pb_char.descriptors.add(uuid=_split(CCCD), handle=char.cccd)
    return message
