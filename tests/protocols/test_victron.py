"""Victron instant readout via victron-ble, mapped onto Reading."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import Advertisement, BatteryState, Reading
from battery_hawk.protocols import Victron
from battery_hawk.simulator import frames

# A capture and key from keshavdv/victron-ble tests/test_battery_monitor.py; the captures
# with their reported values are in captures/ (test_captures.py).
SMARTSHUNT_KEY = bytes.fromhex("aff4d0995b7d1e176c0c33ecb9e70dcd")
SMARTSHUNT = bytes.fromhex("100289a302b040af925d09a4d89aa0128bdef48c6298a9")
SOLAR_KEY = bytes.fromhex("adeccb947395801a4dd45a2eaa44bf17")


def test_wrong_key_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="key"):
        Victron(bytes(16)).decode(SMARTSHUNT)


def test_driver_requires_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        Victron()


def test_record_that_is_not_instant_readout_is_not_a_reading() -> None:
    with pytest.raises(NotAReading):
        Victron(SMARTSHUNT_KEY).decode(b"\x11" + SMARTSHUNT[1:])


@pytest.mark.parametrize("size", [0, 1, 7, 8])
def test_short_payload_raises_decode_error(size: int) -> None:
    with pytest.raises(DecodeError):
        Victron(SMARTSHUNT_KEY).decode(SMARTSHUNT[:size])


@pytest.mark.parametrize("size", range(9, len(SMARTSHUNT)))
def test_a_record_cut_short_raises_decode_error(size: int) -> None:
    # the capture's 15 encrypted bytes carry 118 bits of fields, so every cut loses some.
    # victron-ble pads the ciphertext before decrypting; the pad must not become values.
    with pytest.raises(DecodeError):
        Victron(SMARTSHUNT_KEY).decode(SMARTSHUNT[:size])


def test_state_of_charge_over_100_raises_decode_error() -> None:
    # 10 bits of SoC in 0.1 % can say up to 102.2 % (0x3FF is "not available")
    plain = frames._bits([(0xFFFF, 16), (1270, 16), (0, 16), (0, 16), (3, 2), (0, 22),
                          (0, 20), (1015, 10)])
    frame = frames.victron_payload(0x02, 0xA389, plain, SMARTSHUNT_KEY, nonce=7)
    with pytest.raises(DecodeError, match="state of charge"):
        Victron(SMARTSHUNT_KEY).decode(frame)


def test_unsupported_readout_type_raises_decode_error() -> None:
    frame = SMARTSHUNT[:4] + b"\x06" + SMARTSHUNT[5:]  # 0x06 InverterRS: not parsed
    with pytest.raises(DecodeError):
        Victron(SMARTSHUNT_KEY).decode(frame)


def test_advert_payload_is_the_0x02e1_manufacturer_data() -> None:
    adv = Advertisement("AA:BB:CC:DD:EE:01", manufacturer_data={0x02E1: SMARTSHUNT})
    assert Victron(SMARTSHUNT_KEY).advert_payload(adv) == SMARTSHUNT
    with pytest.raises(DecodeError):
        Victron(SMARTSHUNT_KEY).advert_payload(Advertisement("AA:BB:CC:DD:EE:01"))


def test_encoder_reproduces_the_smartshunt_capture_byte_for_byte() -> None:
    # victron-ble test_battery_monitor.test_parse gives the capture's plaintext; its
    # first 15 bytes (118 bits of fields) are what the SmartShunt encrypts.
    plain = bytes.fromhex("ffffe50400000000030000f40140df")
    payload = frames.victron_payload(0x02, 0xA389, plain, SMARTSHUNT_KEY, nonce=0x40B0)
    assert payload == SMARTSHUNT


@pytest.mark.parametrize(
    "reading",
    [
        Reading(
            voltage=12.53,
            soc=50.0,
            temperature=21.5,
            current=-1.234,
            consumed_ah=-50.0,
            remaining_mins=300.0,
            state=BatteryState.DISCHARGING,
        ),
        Reading(
            voltage=13.2,
            soc=99.9,
            current=4.5,
            consumed_ah=-0.3,
            aux_voltage=12.71,
            state=BatteryState.CHARGING,
        ),
        Reading(
            voltage=11.5, soc=10.0, current=0.0, consumed_ah=-80.0, state=BatteryState.LOW_VOLTAGE
        ),
        # current "not available" (0x3FFFFF) must come back as None, not -0.001 A
        Reading(voltage=12.9, soc=80.0, consumed_ah=-1.0),
    ],
)
def test_encoded_battery_monitor_decodes_to_the_same_reading(reading: Reading) -> None:
    payload = frames.victron_battery_monitor(reading, SMARTSHUNT_KEY, nonce=1234)
    assert Victron(SMARTSHUNT_KEY).decode(payload) == reading


def test_encoded_solar_charger_decodes_to_the_same_reading() -> None:
    reading = Reading(
        voltage=13.88, current=1.4, solar_power=19.0, yield_today=0.03, state=BatteryState.CHARGING
    )
    payload = frames.victron_solar_charger(reading, SOLAR_KEY, nonce=7)
    # the encoder sends "bulk" for charging; the device's own word comes back too
    assert Victron(SOLAR_KEY).decode(payload) == dataclasses.replace(reading, device_state="bulk")


@given(st.binary(max_size=40))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Victron(SMARTSHUNT_KEY).decode(data)


@given(st.sampled_from(range(16)), st.binary(min_size=1, max_size=24))
def test_random_records_behind_a_valid_header_raise_only_decode_error(
    readout_type: int, body: bytes
) -> None:
    # Key check byte right, readout type any: this reaches victron-ble's parsers.
    frame = bytes([0x10, 0x02, 0x89, 0xA3, readout_type, 0, 0, SMARTSHUNT_KEY[0]]) + body
    with contextlib.suppress(DecodeError):
        Victron(SMARTSHUNT_KEY).decode(frame)


@given(
    centivolts=st.integers(-0x8000, 0x7FFE),
    # -1 mA shares its bit pattern with "not available" (see the None case above)
    milliamps=st.integers(-0x200000, 0x1FFFFF).filter(lambda ma: ma != -1),
    soc_tenths=st.integers(0, 1000),
    consumed_tenths=st.integers(0, 0xFFFFE),
    remaining=st.integers(0, 0xFFFE),
    centi_celsius=st.integers(-4000, 6000),
    nonce=st.integers(0, 0xFFFF),
)
def test_any_encodable_battery_monitor_reading_round_trips(
    centivolts: int,
    milliamps: int,
    soc_tenths: int,
    consumed_tenths: int,
    remaining: int,
    centi_celsius: int,
    nonce: int,
) -> None:
    current = milliamps / 1000
    state = (
        BatteryState.CHARGING
        if current > 0
        else BatteryState.DISCHARGING
        if current < 0
        else BatteryState.IDLE
    )
    reading = Reading(
        voltage=centivolts / 100,
        soc=soc_tenths / 10,
        temperature=centi_celsius / 100,
        current=current,
        consumed_ah=-consumed_tenths / 10,
        remaining_mins=float(remaining),
        state=state,
    )
    payload = frames.victron_battery_monitor(reading, SMARTSHUNT_KEY, nonce)
    assert Victron(SMARTSHUNT_KEY).decode(payload) == reading
