"""The values that flow through battery-hawk: adverts in, readings out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "MEASUREMENT_FIELDS",
    "TEXT_FIELDS",
    "Advertisement",
    "BatteryState",
    "DeviceInfo",
    "DeviceReading",
    "Reading",
]


class BatteryState(StrEnum):
    """What the monitor says the battery is doing."""

    NORMAL = "normal"
    LOW_VOLTAGE = "low_voltage"
    CHARGING = "charging"
    DISCHARGING = "discharging"
    IDLE = "idle"
    FAULT = "fault"


def _frozen_map(data: Mapping[int, bytes] | Mapping[str, bytes] | None) -> Mapping:  # type: ignore[type-arg]
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One BLE advertisement as the scanner saw it."""

    address: str
    name: str | None = None
    rssi: int | None = None
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    service_uuids: tuple[str, ...] = ()
    radio: str | None = None  # the radio (adapter, proxy) that heard it, when several listen

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", self.address.upper())
        object.__setattr__(self, "manufacturer_data", _frozen_map(self.manufacturer_data))
        object.__setattr__(self, "service_data", _frozen_map(self.service_data))
        object.__setattr__(self, "service_uuids", tuple(u.lower() for u in self.service_uuids))


@dataclass(frozen=True, slots=True)
class Reading:
    """What a monitor measured, in SI units. A field the device does not report is None.

    current is positive while charging; power in W; consumed_ah in Ah (negative = drawn);
    remaining_mins in minutes; aux_voltage is a second (starter / midpoint) voltage;
    solar_power in W and yield_today in kWh come from solar chargers; ac_apparent_power
    is an inverter's AC output in VA. state says what the battery does; device_state is
    what the device itself says it does, in its own words ("bulk", "inverting", ...).
    """

    voltage: float | None = None
    soc: float | None = None
    temperature: float | None = None
    current: float | None = None
    power: float | None = None
    consumed_ah: float | None = None
    remaining_mins: float | None = None
    aux_voltage: float | None = None
    solar_power: float | None = None
    yield_today: float | None = None
    state: BatteryState | str | None = None
    ac_apparent_power: float | None = None
    device_state: str | None = None

    def measurements(self) -> dict[str, float]:
        """The numeric fields this reading actually carries."""
        return {
            name: value
            for name in MEASUREMENT_FIELDS
            if (value := getattr(self, name)) is not None
        }


TEXT_FIELDS: tuple[str, ...] = ("state", "device_state")
MEASUREMENT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(Reading) if f.name not in TEXT_FIELDS
)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Who a device is: used for the Home Assistant device block and the status page."""

    device_id: str
    address: str
    name: str
    model: str
    manufacturer: str
    family: str
    firmware: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """A Reading stamped with where and when it came from, ready to publish."""

    device: DeviceInfo
    reading: Reading
    timestamp: datetime
    seq: int
    rssi: int | None = None
    duration: float | None = None  # seconds the visit took (connect + exchange); None if passive
    gateway: str | None = None  # the gateway that read it (set when site.enabled)
    radio: str | None = None  # the radio (hciN, a proxy) that read it, when known
