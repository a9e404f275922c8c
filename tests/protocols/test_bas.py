"""Standard Battery Service: one Battery Level byte."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from battery_hawk.errors import DecodeError
from battery_hawk.models import Reading
from battery_hawk.protocols import BatteryService
from battery_hawk.simulator import frames


@pytest.mark.parametrize("level", [0, 1, 57, 100])
def test_battery_level_is_the_state_of_charge(level: int) -> None:
    # Bluetooth SIG GATT Specification Supplement, Battery Level: uint8 percentage.
    assert BatteryService().decode(bytes([level])) == Reading(soc=float(level))


def test_level_over_100_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        BatteryService().decode(b"\x65")


@pytest.mark.parametrize("frame", [b"", b"\x10\x00"])
def test_frame_that_is_not_one_byte_raises_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        BatteryService().decode(frame)


def test_encoded_level_round_trips() -> None:
    assert BatteryService().decode(frames.bas_level(83.4)) == Reading(soc=83.0)


@given(st.binary(max_size=4))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        BatteryService().decode(data)
