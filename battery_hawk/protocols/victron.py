"""Victron "Instant Readout": encrypted manufacturer data 0x02E1, no connection.

Decryption and bit-field parsing are the `victron-ble` library's (keshavdv/victron-ble);
this module only maps its results onto Reading and translates its exceptions. The
library is imported on first use, so importing battery_hawk.protocols does not need it
(the fake BlueZ imports the simulator's encoders under the system Python).

Payload layout (victron-ble ``Device.parse_container``; Victron "extra manufacturer
data" 2022-12-14): 0 record type ``0x10`` (product advertisement), 1 unused, 2..3 model
id LE, 4 readout type (0x02 battery monitor, 0x01 solar charger, ...), 5..6 AES-CTR
nonce LE, 7 first byte of the key (a key check), 8.. ciphertext.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import cache
from typing import Any, ClassVar, Final

from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import Advertisement, BatteryState, Reading
from battery_hawk.protocols.base import Driver, Mode

__all__ = ["VICTRON_MANUFACTURER_ID", "Victron"]

VICTRON_MANUFACTURER_ID: Final = 0x02E1
PRODUCT_ADVERTISEMENT: Final = 0x10
HEADER_SIZE: Final = 8  # through the key check byte

# victron-ble's OperationMode names -> what the battery is doing.
_CHARGING_MODES: Final = frozenset(
    {
        "BULK",
        "ABSORPTION",
        "FLOAT",
        "STORAGE",
        "EQUALIZE_MANUAL",
        "REPEATED_ABSORPTION",
        "RECONDITION",
        "POWER_SUPPLY",
    }
)
_IDLE_MODES: Final = frozenset({"OFF", "LOW_POWER"})
_FAULT_MODES: Final = frozenset({"FAULT"})

Mapper = Callable[[Any], Reading]
_Library = tuple[Callable[[bytes], Any], dict[type, Mapper], tuple[type[BaseException], ...]]


def _mode_state(mode: Any) -> BatteryState | None:
    name = getattr(mode, "name", None)
    if name in _CHARGING_MODES:
        return BatteryState.CHARGING
    if name in _IDLE_MODES:
        return BatteryState.IDLE
    if name in _FAULT_MODES:
        return BatteryState.FAULT
    return None


def _current_state(current: float | None) -> BatteryState | None:
    if current is None:
        return None
    if current > 0:
        return BatteryState.CHARGING
    if current < 0:
        return BatteryState.DISCHARGING
    return BatteryState.IDLE


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _negated(value: Any) -> float | None:
    return None if value is None else -float(value)


# Battery-monitor current is a signed 22-bit field whose "not available" pattern is
# 0x3FFFFF (Victron, "Extra manufacturer data" spec). victron-ble reads it signed (-1 mA)
# and then compares it with the unsigned pattern, so NA reaches us as -0.001 A.
_CURRENT_NOT_AVAILABLE: Final = -0.001


def _battery_monitor(d: Any) -> Reading:
    current = _num(d.get_current())
    if current == _CURRENT_NOT_AVAILABLE:
        current = None
    alarm = getattr(d.get_alarm(), "name", None)
    starter = d.get_starter_voltage()
    return Reading(
        voltage=_num(d.get_voltage()),
        soc=_num(d.get_soc()),
        temperature=_num(d.get_temperature()),
        current=current,
        consumed_ah=_num(d.get_consumed_ah()),
        remaining_mins=_num(d.get_remaining_mins()),
        aux_voltage=_num(starter if starter is not None else d.get_midpoint_voltage()),
        state=BatteryState.LOW_VOLTAGE if alarm == "LOW_VOLTAGE" else _current_state(current),
    )


def _battery_sense(d: Any) -> Reading:
    return Reading(voltage=_num(d.get_voltage()), temperature=_num(d.get_temperature()))


def _solar_charger(d: Any) -> Reading:
    yield_wh = d.get_yield_today()
    return Reading(
        voltage=_num(d.get_battery_voltage()),
        current=_num(d.get_battery_charging_current()),
        solar_power=_num(d.get_solar_power()),
        yield_today=None if yield_wh is None else yield_wh / 1000,
        state=_mode_state(d.get_charge_state()),
    )


def _dcdc_converter(d: Any) -> Reading:
    return Reading(
        voltage=_num(d.get_output_voltage()),
        aux_voltage=_num(d.get_input_voltage()),
        state=_mode_state(d.get_charge_state()),
    )


def _orion_xs(d: Any) -> Reading:
    return Reading(
        voltage=_num(d.get_output_voltage()),
        current=_num(d.get_output_current()),
        aux_voltage=_num(d.get_input_voltage()),
        state=_mode_state(d.get_charge_state()),
    )


def _dc_energy_meter(d: Any) -> Reading:
    current = _num(d.get_current())
    return Reading(
        voltage=_num(d.get_voltage()),
        current=current,
        temperature=_num(d.get_temperature()),
        aux_voltage=_num(d.get_starter_voltage()),
    )


def _smart_lithium(d: Any) -> Reading:
    return Reading(
        voltage=_num(d.get_battery_voltage()),
        temperature=_num(d.get_battery_temperature()),
    )


def _lynx_smart_bms(d: Any) -> Reading:
    current = _num(d.get_current())
    return Reading(
        voltage=_num(d.get_voltage()),
        soc=_num(d.get_soc()),
        temperature=_num(d.get_battery_temperature()),
        current=current,
        # victron-ble reports the Lynx's consumed Ah as a positive number; Reading's
        # convention (like its BatteryMonitor) is negative = drawn.
        consumed_ah=_negated(d.get_consumed_ah()),
        remaining_mins=_num(d.get_remaining_mins()),
        state=_current_state(current),
    )


def _vebus(d: Any) -> Reading:
    current = _num(d.get_battery_current())
    return Reading(
        voltage=_num(d.get_battery_voltage()),
        current=current,
        soc=_num(d.get_soc()),
        temperature=_num(d.get_battery_temperature()),
        state=_mode_state(d.get_device_state()),
    )


def _multirs(d: Any) -> Reading:
    return Reading(
        voltage=_num(d.get_battery_voltage()),
        current=_num(d.get_battery_current()),
        solar_power=_num(d.get_pv_power()),
        yield_today=_num(d.get_yield_today()),  # victron-ble: kWh
        state=_mode_state(d.get_device_state()),
    )


def _inverter(d: Any) -> Reading:
    return Reading(voltage=_num(d.get_battery_voltage()), state=_mode_state(d.get_device_state()))


def _ac_charger(d: Any) -> Reading:
    return Reading(
        voltage=_num(d.get_output_voltage1()),
        current=_num(d.get_output_current1()),
        temperature=_num(d.get_temperature()),
        state=_mode_state(d.get_charge_state()),
    )


def _battery_protect(d: Any) -> Reading:
    return Reading(
        voltage=_num(d.get_input_voltage()),
        aux_voltage=_num(d.get_output_voltage()),
        state=_mode_state(d.get_device_state()),
    )


@cache
def _library() -> _Library:
    """victron-ble's detector, a data-class -> mapper table and its exception types."""
    from victron_ble import devices as vd
    from victron_ble import exceptions as vx

    # Looked up by the exact type parse() returned.
    mappers: dict[type, Mapper] = {
        vd.BatteryMonitorData: _battery_monitor,
        vd.BatterySenseData: _battery_sense,
        vd.SolarChargerData: _solar_charger,
        vd.DcDcConverterData: _dcdc_converter,
        vd.OrionXSData: _orion_xs,
        vd.DcEnergyMeterData: _dc_energy_meter,
        vd.SmartLithiumData: _smart_lithium,
        vd.LynxSmartBMSData: _lynx_smart_bms,
        vd.VEBusData: _vebus,
        vd.MultiRSData: _multirs,
        vd.InverterData: _inverter,
        vd.AcChargerData: _ac_charger,
        vd.SmartBatteryProtectData: _battery_protect,
    }
    errors = (
        vx.AdvertisementKeyMismatchError,
        vx.AdvertisementKeyMissingError,
        vx.UnknownDeviceError,
        ValueError,
        IndexError,
        KeyError,
        TypeError,
        ArithmeticError,
        struct.error,
    )
    return vd.detect_device_type, mappers, errors


class Victron(Driver):
    """Victron SmartShunt, BMV, Smart Battery Sense, SmartSolar, Orion, ... (instant readout)."""

    family: ClassVar[str] = "victron"
    model: ClassVar[str] = "Victron"
    manufacturer: ClassVar[str] = "Victron Energy"
    mode: ClassVar[Mode] = Mode.PASSIVE
    requires_key: ClassVar[bool] = True

    def __init__(self, key: bytes | None = None) -> None:
        super().__init__(key)
        assert self.key is not None
        self._hex_key = self.key.hex()
        self._key_check = self.key[0]
        self._parsers: dict[type, Any] = {}

    @classmethod
    def match(cls, adv: Advertisement) -> str | None:
        data = adv.manufacturer_data.get(VICTRON_MANUFACTURER_ID)
        if data and data[0] == PRODUCT_ADVERTISEMENT:
            return "manufacturer data 0x02e1 (Victron instant readout)"
        return None

    def advert_payload(self, adv: Advertisement) -> bytes:
        try:
            return bytes(adv.manufacturer_data[VICTRON_MANUFACTURER_ID])
        except KeyError:
            raise DecodeError("advertisement has no Victron manufacturer data") from None

    def decode(self, frame: bytes) -> Reading:
        frame = bytes(frame)
        if len(frame) <= HEADER_SIZE:
            raise DecodeError(f"victron payload too short: {len(frame)} bytes")
        if frame[0] != PRODUCT_ADVERTISEMENT:
            raise NotAReading(f"victron record type {frame[0]:#04x} is not an instant readout")
        if frame[HEADER_SIZE - 1] != self._key_check:
            raise DecodeError("victron key check byte does not match: wrong advertisement key")
        detect, mappers, errors = _library()
        device_type = detect(frame)
        if device_type is None:
            raise DecodeError(f"victron readout type {frame[4]:#04x} is not supported")
        parser = self._parsers.get(device_type)
        if parser is None:
            parser = self._parsers[device_type] = device_type(self._hex_key)
        try:
            data = parser.parse(frame)
            mapper = mappers.get(type(data))
            if mapper is None:
                raise DecodeError(f"victron {type(data).__name__} is not mapped")
            return mapper(data)
        except DecodeError:
            raise
        except errors as exc:
            raise DecodeError(f"victron payload could not be parsed: {exc!r}") from exc
