"""Victron "Instant Readout": encrypted manufacturer data 0x02E1, no connection.

Decryption and bit-field parsing are the `victron-ble` library's (keshavdv/victron-ble);
this module maps its results onto Reading and translates its exceptions. The library is
imported on first use, so importing battery_hawk.protocols does not need it (the fake
BlueZ imports the simulator's encoders under the system Python).

victron-ble turns every enum field (operation mode, charger error, off reason, alarm
reason, ...) into a Python Enum inside ``parse_decrypted``, so one code it does not list
(a combined off reason such as 0x81, a new device state) raises and loses the whole
record. Real units send such codes (keshavdv/victron-ble issue 20, victron-hacs issues
209, 213, 214). So before handing the plaintext to the library, this module reads each
enum field itself (_ENUM_FIELDS: the bit positions of Victron's "extra manufacturer
data" records, in victron-ble's field order), and a code the library would reject is
replaced by one it accepts; the field then reads None in the Reading, and the driver
counts it in ``unknown_codes``. Every numeric field still decodes.

Payload layout (victron-ble ``Device.parse_container``; Victron "extra manufacturer
data" 2022-12-14): 0 record type ``0x10`` (product advertisement), 1 unused, 2..3 model
id LE, 4 readout type (0x02 battery monitor, 0x01 solar charger, ...), 5..6 AES-CTR
nonce LE, 7 first byte of the key (a key check), 8.. ciphertext.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any, ClassVar, Final

from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import Advertisement, BatteryState, Reading
from battery_hawk.protocols.base import Driver, Mode

__all__ = ["VICTRON_MANUFACTURER_ID", "Victron", "model_name"]

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
# The battery feeds the AC output while an inverter inverts.
_DISCHARGING_MODES: Final = frozenset({"INVERTING"})

# Model ids victron-ble names wrongly or not at all. 0xA3F0 was first sold as "Smart
# Buck Boost" and then as the Orion XS (keshavdv/victron-ble issue 53); 0xA3F1 is the
# Orion XS 1400 (keshavdv/victron-ble issue 83).
_MODEL_NAMES: Final[Mapping[int, str]] = {
    0xA3F0: "Orion XS 12/12-50A",
    0xA3F1: "Orion XS 1400",
}

Mapper = Callable[[Any], Reading]
_Library = tuple[
    Callable[[bytes], Any],
    dict[type, Mapper],
    "dict[type, tuple[_EnumField, ...]]",
    tuple[type[BaseException], ...],
]


def _mode_state(mode: Any) -> BatteryState | None:
    name = getattr(mode, "name", None)
    if name in _CHARGING_MODES:
        return BatteryState.CHARGING
    if name in _IDLE_MODES:
        return BatteryState.IDLE
    if name in _FAULT_MODES:
        return BatteryState.FAULT
    if name in _DISCHARGING_MODES:
        return BatteryState.DISCHARGING
    return None


def _mode_word(mode: Any) -> str | None:
    """What the device says it does, in its own words ("bulk", "inverting", ...)."""
    name = getattr(mode, "name", None)
    return None if name is None else str(name).lower()


def model_name(model_id: int) -> str | None:
    """The product name of a Victron model id ("SmartSolar MPPT 75/15"), or None."""
    name = _MODEL_NAMES.get(model_id)
    if name is None:
        from victron_ble.devices.base import MODEL_ID_MAPPING

        name = MODEL_ID_MAPPING.get(model_id)
    if name is None:
        return None
    # Victron sells them as "SmartSolar MPPT 75/15"; the VE.Direct list adds "Charger".
    return name.replace("Solar Charger MPPT", "Solar MPPT")


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
    mode = d.get_charge_state()
    return Reading(
        voltage=_num(d.get_battery_voltage()),
        current=_num(d.get_battery_charging_current()),
        solar_power=_num(d.get_solar_power()),
        yield_today=None if yield_wh is None else yield_wh / 1000,
        state=_mode_state(mode),
        device_state=_mode_word(mode),
    )


def _dcdc_converter(d: Any) -> Reading:
    mode = d.get_charge_state()
    return Reading(
        voltage=_num(d.get_output_voltage()),
        aux_voltage=_num(d.get_input_voltage()),
        state=_mode_state(mode),
        device_state=_mode_word(mode),
    )


def _orion_xs(d: Any) -> Reading:
    mode = d.get_charge_state()
    return Reading(
        voltage=_num(d.get_output_voltage()),
        current=_num(d.get_output_current()),
        aux_voltage=_num(d.get_input_voltage()),
        state=_mode_state(mode),
        device_state=_mode_word(mode),
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
    mode = d.get_device_state()
    return Reading(
        voltage=_num(d.get_battery_voltage()),
        current=current,
        soc=_num(d.get_soc()),
        temperature=_num(d.get_battery_temperature()),
        power=_num(d.get_ac_out_power()),  # AC output, W
        state=_mode_state(mode),
        device_state=_mode_word(mode),
    )


def _multirs(d: Any) -> Reading:
    mode = d.get_device_state()
    return Reading(
        voltage=_num(d.get_battery_voltage()),
        current=_num(d.get_battery_current()),
        power=_num(d.get_active_ac_out_power()),  # AC output, W
        solar_power=_num(d.get_pv_power()),
        yield_today=_num(d.get_yield_today()),  # victron-ble: kWh
        state=_mode_state(mode),
        device_state=_mode_word(mode),
    )


def _inverter(d: Any) -> Reading:
    mode = d.get_device_state()
    return Reading(
        voltage=_num(d.get_battery_voltage()),
        ac_apparent_power=_num(d.get_ac_apparent_power()),  # AC output, VA
        state=_mode_state(mode),
        device_state=_mode_word(mode),
    )


def _ac_charger(d: Any) -> Reading:
    mode = d.get_charge_state()
    return Reading(
        voltage=_num(d.get_output_voltage1()),
        current=_num(d.get_output_current1()),
        temperature=_num(d.get_temperature()),
        state=_mode_state(mode),
        device_state=_mode_word(mode),
    )


def _battery_protect(d: Any) -> Reading:
    mode = d.get_device_state()
    return Reading(
        voltage=_num(d.get_input_voltage()),
        aux_voltage=_num(d.get_output_voltage()),
        state=_mode_state(mode),
        device_state=_mode_word(mode),
    )


@dataclass(frozen=True, slots=True)
class _EnumField:
    """One enum field of a record: where its bits are and how victron-ble reads them."""

    name: str  # the key in victron-ble's parsed dict
    offset: int  # first bit (fields are packed LSB first, in order)
    bits: int
    enum: type[Enum]
    signed: bool = False  # victron-ble reads it as a signed number
    library_na: int | None = None  # the value victron-ble itself maps to None

    def code(self, plain: int) -> int:
        """The raw (unsigned) code in the little-endian plaintext."""
        return (plain >> self.offset) & ((1 << self.bits) - 1)

    def accepted(self, code: int) -> bool:
        """Whether victron-ble turns this code into a value rather than raising."""
        value = code - (1 << self.bits) if self.signed and code >> (self.bits - 1) else code
        if value == self.library_na:
            return True
        try:
            self.enum(value)
        except ValueError:
            return False
        return True

    def substitute(self) -> int:
        """A code victron-ble accepts (its enum's first member), as raw bits."""
        first = next(iter(self.enum)).value
        return int(first) & ((1 << self.bits) - 1)


def _enum_fields(vd: Any) -> dict[type, tuple[_EnumField, ...]]:
    """Parser class -> its enum fields (Victron "extra manufacturer data" record layouts;
    offsets follow victron-ble's read order)."""
    from victron_ble.devices import base as vb
    from victron_ble.devices.dc_energy_meter import MeterType
    from victron_ble.devices.multirs import MultiRSOperationMode
    from victron_ble.devices.smart_battery_protect import OutputState
    from victron_ble.devices.smart_lithium import BalancerStatus

    mode, error = vb.OperationMode, vb.ChargerError

    def charger(state: str) -> tuple[_EnumField, ...]:
        return (_EnumField(state, 0, 8, mode, library_na=0xFF),
                _EnumField("charger_error", 8, 8, error, library_na=0xFF))

    return {
        vd.BatteryMonitor: (_EnumField("alarm", 32, 16, vb.AlarmReason),),
        vd.DcEnergyMeter: (_EnumField("meter_type", 0, 16, MeterType, signed=True),),
        vd.SolarCharger: charger("charge_state"),
        vd.AcCharger: charger("charge_state"),
        vd.DcDcConverter: (*charger("device_state"),
                           _EnumField("off_reason", 48, 32, vb.OffReason)),
        vd.OrionXS: (*charger("device_state"), _EnumField("off_reason", 80, 32, vb.OffReason)),
        vd.Inverter: (_EnumField("device_state", 0, 8, mode, library_na=0xFF),),
        vd.VEBus: (_EnumField("device_state", 0, 8, mode, library_na=0xFF),),
        vd.SmartBatteryProtect: (
            _EnumField("device_state", 0, 8, mode, library_na=0xFF),
            _EnumField("output_state", 8, 8, OutputState, library_na=0xFF),
            _EnumField("error_code", 16, 8, error, library_na=0xFF),
            _EnumField("alarm_reason", 24, 16, vb.AlarmReason),
            _EnumField("warning_reason", 40, 16, vb.AlarmReason),
            _EnumField("off_reason", 88, 32, vb.OffReason),
        ),
        # victron-ble unpacks these two bytes as signed ("<bb"), so codes over 127 (and
        # the 0xFF "not available") never match its enums.
        vd.MultiRS: (
            _EnumField("device_state", 0, 8, MultiRSOperationMode, signed=True),
            _EnumField("charger_error", 8, 8, error, signed=True),
        ),
        vd.SmartLithium: (_EnumField("balancer_status", 116, 4, BalancerStatus,
                                     library_na=0xF),),
        vd.LynxSmartBMS: (),
    }


@cache
def _library() -> _Library:
    """victron-ble's detector, a data-class -> mapper table, enum fields, exception types."""
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
    return vd.detect_device_type, mappers, _enum_fields(vd), errors


class Victron(Driver):
    """Victron SmartShunt, BMV, Smart Battery Sense, SmartSolar, Orion, ... (instant readout).

    After each decode, ``device_model`` holds the product name the advert's model id
    stands for (None if unknown), and ``unknown_codes`` counts, per field name, the enum
    codes victron-ble does not know (those fields read None; the rest of the record
    decodes). ``last_unknown`` keeps the raw numbers of the last such codes.
    """

    family: ClassVar[str] = "victron"
    model: ClassVar[str] = "Victron"
    manufacturer: ClassVar[str] = "Victron Energy"
    mode: ClassVar[Mode] = Mode.PASSIVE
    requires_key: ClassVar[bool] = True
    advert_fields: ClassVar[tuple[str, ...]] = ("*",)  # whatever the record carries

    def __init__(self, key: bytes | None = None) -> None:
        super().__init__(key)
        assert self.key is not None
        self._hex_key = self.key.hex()
        self._key_check = self.key[0]
        self._parsers: dict[type, Any] = {}
        self.device_model: str | None = None
        self._model_id: int | None = None
        self.unknown_codes: Counter[str] = Counter()
        self.last_unknown: dict[str, int] = {}

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

    def decode_advert(self, adv: Advertisement) -> Reading:
        if VICTRON_MANUFACTURER_ID not in adv.manufacturer_data:
            raise NotAReading("advertisement has no Victron manufacturer data")
        return self.decode(self.advert_payload(adv))

    def decode(self, frame: bytes) -> Reading:
        frame = bytes(frame)
        if len(frame) <= HEADER_SIZE:
            raise DecodeError(f"victron payload too short: {len(frame)} bytes")
        if frame[0] != PRODUCT_ADVERTISEMENT:
            raise NotAReading(f"victron record type {frame[0]:#04x} is not an instant readout")
        if frame[HEADER_SIZE - 1] != self._key_check:
            raise DecodeError(
                "victron key check byte does not match: wrong advertisement key (the key "
                "is in VictronConnect > the device > settings > Product info > "
                "Instant readout details > show encryption data)"
            )
        detect, mappers, enum_fields, errors = _library()
        device_type = detect(frame)
        if device_type is None:
            raise DecodeError(f"victron readout type {frame[4]:#04x} is not supported")
        parser = self._parsers.get(device_type)
        if parser is None:
            parser = self._parsers[device_type] = device_type(self._hex_key)
        model_id = int.from_bytes(frame[2:4], "little")
        try:
            # victron-ble pads the ciphertext to whole blocks before it decrypts, and the
            # pad decrypts to noise: a record cut short would read noise for its last
            # fields. Keep what was sent, so a short record fails to parse instead.
            plain = parser.decrypt(frame)[: len(frame) - HEADER_SIZE]
            fields = next((enum_fields[c] for c in device_type.__mro__ if c in enum_fields), ())
            plain, unknown = self._tame(plain, fields)
            parsed = parser.parse_decrypted(plain)
            for name in unknown:
                parsed[name] = None
            data = parser.data_type(model_id, parsed)
            mapper = mappers.get(type(data))
            if mapper is None:
                raise DecodeError(f"victron {type(data).__name__} is not mapped")
            reading = mapper(data)
        except DecodeError:
            raise
        except errors as exc:
            raise DecodeError(f"victron payload could not be parsed: {exc!r}") from exc
        if reading.soc is not None and not 0 <= reading.soc <= 100:
            raise DecodeError(f"victron state of charge {reading.soc} % is impossible")
        if model_id != self._model_id:
            self._model_id = model_id
            self.device_model = model_name(model_id)
        return reading

    def _tame(self, plain: bytes, fields: tuple[_EnumField, ...]) -> tuple[bytes, list[str]]:
        """The plaintext with every code victron-ble would reject replaced by one it
        accepts, and the names of those fields (to be read as None).

        All-ones is Victron's "not available": replaced too, but not counted.
        """
        if not fields:
            return plain, []
        value = int.from_bytes(plain, "little")
        size = len(plain) * 8
        unknown: list[str] = []
        for field in fields:
            if field.offset + field.bits > size:
                continue  # a short record: the library reports it
            code = field.code(value)
            if field.accepted(code):
                continue
            mask = ((1 << field.bits) - 1) << field.offset
            value = (value & ~mask) | (field.substitute() << field.offset)
            unknown.append(field.name)
            if code != (1 << field.bits) - 1:
                self.unknown_codes[field.name] += 1
                self.last_unknown[field.name] = code
        if not unknown:
            return plain, []
        return value.to_bytes(len(plain), "little"), unknown
