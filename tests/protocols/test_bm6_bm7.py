"""BM6 and BM7 / BM300 Pro: the d1 55 07 request and its reply."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import BatteryState, Reading
from battery_hawk.protocols import BM6, BM7
from battery_hawk.protocols._aes import ZeroIvCbc
from battery_hawk.protocols.bm6 import BM6_KEY
from battery_hawk.protocols.bm7 import BM7_KEY
from battery_hawk.simulator import frames


def encrypted(plain_hex: str, key: bytes) -> bytes:
    return ZeroIvCbc(key).encrypt(bytes.fromhex(plain_hex))


def test_bm6_poll_command_is_the_published_ciphertext() -> None:
    # The ESPHome BM6 component (BatteryMonitor_BM6::write_query_message_) documents
    # 697ea0b5... as the encrypted "d1550700000000000000000000000000".
    assert BM6().poll_command() == bytes.fromhex("697ea0b5d54cf024e794772355554114")


def test_bm7_poll_command_is_the_request_under_the_bm7_key() -> None:
    assert ZeroIvCbc(BM7_KEY).decrypt(BM7().poll_command()) == bytes.fromhex(
        "d1550700000000000000000000000000"
    )


def test_temperature_sign_byte_one_means_below_zero() -> None:
    frame = encrypted("d155070105004b04e2", BM6_KEY)
    assert BM6().decode(frame) == Reading(
        voltage=12.5, soc=75.0, temperature=-5.0, state=BatteryState.NORMAL
    )


def test_zero_degrees_is_a_valid_reading() -> None:
    frame = encrypted("d155070000013204b0", BM6_KEY)
    assert BM6().decode(frame) == Reading(
        voltage=12.0, soc=50.0, temperature=0.0, state=BatteryState.LOW_VOLTAGE
    )


def test_echo_of_the_request_is_not_a_reading() -> None:
    with pytest.raises(NotAReading):
        BM6().decode(encrypted("d15507ff", BM6_KEY))


def test_firmware_reply_is_not_a_reading_but_gives_its_raw_version() -> None:
    # Payload from marcomc/BMGateway docs, "Raw Version Command", BM6/BM200 row.
    frame = encrypted("d1550101080005000000000000000000", BM6_KEY)
    with pytest.raises(NotAReading):
        BM6().decode(frame)
    assert BM6().firmware_version(frame) == "01080005"


def test_firmware_command_decrypts_to_d15501() -> None:
    assert ZeroIvCbc(BM6_KEY).decrypt(BM6().firmware_command())[:3] == b"\xd1\x55\x01"


def test_frame_under_the_wrong_key_raises_decode_error() -> None:
    frame = encrypted("d155070014026405b20000000002ffff", BM6_KEY)
    with pytest.raises(DecodeError, match="wrong key"):
        BM7().decode(frame)


def test_key_override_decodes_a_rebranded_unit() -> None:
    frame = encrypted("d15507000e026405b300000000000000", BM7_KEY)
    assert BM6(key=BM7_KEY).decode(frame).voltage == 14.59


@pytest.mark.parametrize("size", [0, 1, 15, 17, 32])
def test_frame_that_is_not_one_block_raises_decode_error(size: int) -> None:
    with pytest.raises(DecodeError):
        BM6().decode(bytes(size))


def test_state_of_charge_over_100_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        BM6().decode(encrypted("d155070014006505b2", BM6_KEY))


def test_unknown_state_code_keeps_the_reading_without_a_state() -> None:
    reading = BM6().decode(encrypted("d155070014096405b2", BM6_KEY))
    assert reading == Reading(voltage=14.58, soc=100.0, temperature=20.0, state=None)


@pytest.mark.parametrize(
    "reading",
    [
        Reading(voltage=12.64, soc=80.0, temperature=-3.0, state=BatteryState.CHARGING),
        Reading(voltage=11.2, soc=5.0, temperature=0.0, state=BatteryState.LOW_VOLTAGE),
        Reading(voltage=13.1, soc=100.0, temperature=48.0, state=BatteryState.NORMAL),
    ],
)
@pytest.mark.parametrize(("driver", "key"), [(BM6, BM6_KEY), (BM7, BM7_KEY)])
def test_encoded_reply_decodes_to_the_same_reading(
    reading: Reading, driver: type[BM6 | BM7], key: bytes
) -> None:
    assert driver().decode(frames.bm6_reply(reading, key)) == reading


@given(st.binary(max_size=48))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    for driver in (BM6(), BM7()):
        with contextlib.suppress(DecodeError):
            driver.decode(data)


@given(st.binary(min_size=13, max_size=13))
def test_random_payload_after_a_valid_prefix_raises_only_decode_error(tail: bytes) -> None:
    frame = ZeroIvCbc(BM6_KEY).encrypt(b"\xd1\x55\x07" + tail)
    try:
        reading = BM6().decode(frame)
    except DecodeError:
        return
    assert reading.soc is not None and 0 <= reading.soc <= 100


@given(
    centivolts=st.integers(0, 0xFFFF),
    soc=st.integers(0, 100),
    temperature=st.integers(-255, 255),
    state=st.sampled_from([BatteryState.NORMAL, BatteryState.LOW_VOLTAGE, BatteryState.CHARGING]),
)
def test_any_encodable_reading_round_trips(
    centivolts: int, soc: int, temperature: int, state: BatteryState
) -> None:
    reading = Reading(
        voltage=centivolts / 100, soc=float(soc), temperature=float(temperature), state=state
    )
    assert BM6().decode(frames.bm6_reply(reading)) == reading
