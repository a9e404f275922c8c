"""The standard Bluetooth Battery Service: Battery Level (0x2A19) in service 0x180F.

Bluetooth SIG, Battery Service 1.0 / GATT Specification Supplement: Battery Level is one
uint8, a percentage 0..100. Any generic device that exposes it gives a state of charge.
"""

from __future__ import annotations

from typing import ClassVar, Final

from battery_hawk.errors import DecodeError
from battery_hawk.models import Advertisement, Reading
from battery_hawk.protocols.base import Driver, Mode, uuid16

__all__ = ["BATTERY_LEVEL_UUID", "BATTERY_SERVICE_UUID", "BatteryService"]

BATTERY_SERVICE_UUID: Final = uuid16(0x180F)
BATTERY_LEVEL_UUID: Final = uuid16(0x2A19)


class BatteryService(Driver):
    """Any device with the standard Battery Service: state of charge only, read on poll."""

    family: ClassVar[str] = "bas"
    model: ClassVar[str] = "Battery Service"
    manufacturer: ClassVar[str] = "Bluetooth SIG (generic)"
    mode: ClassVar[Mode] = Mode.READ
    service_uuid: ClassVar[str | None] = BATTERY_SERVICE_UUID
    read_uuid: ClassVar[str | None] = BATTERY_LEVEL_UUID

    @classmethod
    def match(cls, adv: Advertisement) -> str | None:
        if BATTERY_SERVICE_UUID in adv.service_uuids:
            return "service uuid 0x180f (Battery Service)"
        if BATTERY_SERVICE_UUID in adv.service_data:
            return "service data 0x180f (Battery Service)"
        return None

    def decode(self, frame: bytes) -> Reading:
        if len(frame) != 1:
            raise DecodeError(f"battery level must be 1 byte, got {len(frame)}")
        level = frame[0]
        if level > 100:
            raise DecodeError(f"battery level {level} is over 100 %")
        return Reading(soc=float(level))
