"""Victron: an enum code victron-ble does not know never costs the reading.

Every record type, built from a public capture, has each of its enum fields set to every
value (AES-CTR: flipping plaintext bits flips the same ciphertext bits, so the record
stays validly encrypted); the numeric fields must decode exactly as before, the field
itself reads None when the code is unknown, and the driver counts it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from battery_hawk.models import Reading
from battery_hawk.protocols import Victron
from battery_hawk.protocols.victron import _EnumField, _library
from battery_hawk.simulator import frames

CAPTURES = Path(__file__).parent / "captures"


def _capture(name: str) -> tuple[bytes, bytes]:
    case = json.loads((CAPTURES / f"{name}.json").read_text(encoding="utf-8"))
    return bytes.fromhex(case["key"]), bytes.fromhex(case["frames"][0])


LYNX_KEY = bytes.fromhex("aff4d0995b7d1e176c0c33ecb9e70dcd")
# Plaintexts published in keshavdv/victron-ble tests (test_lynx_smart_bms.test_parse,
# test_smart_lithium.test_parse), encrypted here: no end-to-end capture of these exists.
LYNX_PLAIN = (
    b"\x00@8\x8b\n\xfa\xff\x95\x15U\x14\x8c\xcf\x02\x00\xff\xb3\xea\xf1t\xd6\xfczHT\xb8"
    b"\xec\x00\x86\t\xe9\xca"
)
LITHIUM_PLAIN = (
    b"\x00\x00\x00\x06\x00\x00\xc7\xe3\xf1\xf8\xff\xff\xff,5\xb5\xfa\xb4x\x01\x0f\xd2I\xd2"
    b"\xae_iV\xe1\xf8\xa9e"
)

# One record of every type the driver maps: (name, key, frame).
RECORDS: list[tuple[str, bytes, bytes]] = [
    ("battery_monitor", *_capture("40_victron_smartshunt")),
    ("solar_charger", *_capture("41_victron_solar_charger")),
    ("dcdc_converter", *_capture("06_victron_dcdc_offreason_129")),
    ("battery_sense", *_capture("43_victron_battery_sense")),
    ("ac_charger", *_capture("44_victron_ac_charger")),
    ("vebus", *_capture("45_victron_vebus_float")),
    ("battery_protect", *_capture("48_victron_battery_protect")),
    ("dc_energy_meter", *_capture("49_victron_dc_energy_meter")),
    ("multirs", *_capture("50_victron_multirs_inverting")),
    ("orion_xs", *_capture("09_victron_orionxs_charging")),
    ("inverter", *_capture("10_victron_phoenix_inverter")),
    ("lynx", LYNX_KEY, frames.victron_payload(0x0A, 0xA3E6, LYNX_PLAIN[:20], LYNX_KEY, 9)),
    ("smart_lithium", LYNX_KEY,
     frames.victron_payload(0x05, 0xA3E0, LITHIUM_PLAIN[:20], LYNX_KEY, 9)),
]


def _fields(frame: bytes) -> tuple[_EnumField, ...]:
    detect, _, enum_fields, _ = _library()
    return next(enum_fields[c] for c in detect(frame).__mro__ if c in enum_fields)


def _with_code(frame: bytes, field: _EnumField, code: int) -> bytes:
    """The record with one enum field set to ``code`` (CTR: xor the change in)."""
    return frame[:8] + _xor_field(frame[8:], field, code, frame)


def _xor_field(body: bytes, field: _EnumField, code: int, frame: bytes) -> bytes:
    key, _ = _KEYS[frame]
    parser = _library()[0](frame)(key.hex())
    plain = int.from_bytes(parser.decrypt(frame)[: len(body)], "little")
    current = field.code(plain)
    change = (current ^ code) << field.offset
    return (int.from_bytes(body, "little") ^ change).to_bytes(len(body), "little")


_KEYS: dict[bytes, tuple[bytes, str]] = {frame: (key, name) for name, key, frame in RECORDS}


def _numbers(reading: Reading) -> dict[str, float]:
    return reading.measurements()


def test_every_record_type_has_a_record_here() -> None:
    detect, _, enum_fields, _ = _library()
    assert {detect(frame) for _, _, frame in RECORDS} >= set(enum_fields)
    for _, key, frame in RECORDS:
        assert Victron(key).decode(frame).measurements()


CASES = [
    (name, key, frame, field)
    for name, key, frame in RECORDS
    for field in _fields(frame)
    if field.offset + field.bits <= (len(frame) - 8) * 8
]


NARROW = [c for c in CASES if c[3].bits <= 8]
WIDE = [c for c in CASES if c[3].bits > 8]


@pytest.mark.parametrize(
    ("name", "key", "frame", "field"), NARROW, ids=[f"{c[0]}-{c[3].name}" for c in NARROW]
)
def test_every_value_of_a_narrow_enum_field_keeps_the_numbers(
    name: str, key: bytes, frame: bytes, field: _EnumField
) -> None:
    baseline = _numbers(Victron(key).decode(frame))
    for code in range(1 << field.bits):
        driver = Victron(key)
        reading = driver.decode(_with_code(frame, field, code))
        assert _numbers(reading) == baseline, (name, field.name, code)
        if not field.accepted(code) and code != (1 << field.bits) - 1:
            assert driver.unknown_codes[field.name] == 1
            assert driver.last_unknown[field.name] == code


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(WIDE), data=st.data())
def test_any_value_of_a_wide_enum_field_keeps_the_numbers(
    case: tuple[str, bytes, bytes, _EnumField], data: st.DataObject
) -> None:
    name, key, frame, field = case
    code = data.draw(st.integers(0, (1 << field.bits) - 1), label="code")
    baseline = _numbers(Victron(key).decode(frame))
    driver = Victron(key)
    reading = driver.decode(_with_code(frame, field, code))
    assert _numbers(reading) == baseline, (name, field.name, code)
    assert reading.voltage is not None or baseline.get("voltage") is None


def test_an_unknown_off_reason_reads_none_and_is_counted() -> None:
    key, frame = _capture("07_victron_orionxs_offreason_136")
    driver = Victron(key)
    reading = driver.decode(frame)
    assert reading.voltage == 13.2 and reading.aux_voltage == 12.62
    assert driver.unknown_codes == {"off_reason": 1}
    assert driver.last_unknown == {"off_reason": 0x88}


def test_the_model_name_comes_from_the_advert() -> None:
    key, frame = _capture("09_victron_orionxs_charging")
    driver = Victron(key)
    assert driver.device_model is None
    driver.decode(frame)
    assert driver.device_model == "Orion XS 12/12-50A"
