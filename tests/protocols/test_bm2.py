"""BM2: unsolicited 0xF5 voltage notifications and the history download."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import Reading
from battery_hawk.protocols import BM2, BM6
from battery_hawk.protocols._aes import ZeroIvCbc
from battery_hawk.protocols.bm2 import (
    BM2_KEY,
    HistoryPoint,
    history_download_request,
    parse_history,
    parse_history_count,
)
from battery_hawk.simulator import frames

# Notifications captured by KrystianD/bm2-battery-monitor (.docs/reverse_engineering.md),
# with the voltages their decrypted F5 packets carry (f55081... = 0x508 = 12.88 V); they
# are decoded against those values in captures/20_bm2_krystiand_notifications.json.
CAPTURES = [
    ("3627d57495cb945e11d392c800a28bfa", 12.88),
    ("7afd45c0257438c3dd5e7903a9e82366", 12.87),
    ("ebf79548fa7b7455dbed35901665cfc4", 12.87),
    ("c7c8a16d98268a85d1ac82e7b831ff2b", 12.88),
    ("453c61bbfce776e5d51ff1ab7337959d", 12.87),
]

DOWNLOADED_AT = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)


def test_published_capture_decrypts_to_the_published_plaintext() -> None:
    plain = BM2().decrypt(bytes.fromhex(CAPTURES[0][0]))
    assert plain == bytes.fromhex("f550816400fa00000000000000000000")


def test_capture_under_the_wrong_key_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        BM2(key=b"leagend\xff\xfe0100009").decode(bytes.fromhex(CAPTURES[0][0]))


def test_bm6_driver_rejects_a_bm2_notification() -> None:
    with pytest.raises(DecodeError):
        BM6().decode(bytes.fromhex(CAPTURES[0][0]))


@pytest.mark.parametrize("size", [0, 3, 15, 17, 32])
def test_notification_that_is_not_one_block_raises_decode_error(size: int) -> None:
    with pytest.raises(DecodeError):
        BM2().decode(bytes(size))


def test_history_packets_are_not_readings() -> None:
    aes = ZeroIvCbc(BM2_KEY)
    for plain in (b"\xe7\x00\x00\x05", b"\xff\xff\xfe", b"\xff\xfe\xfe\x00\x00\x11"):
        with pytest.raises(NotAReading):
            BM2().decode(aes.encrypt(plain))


def test_other_packet_type_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        BM2().decode(ZeroIvCbc(BM2_KEY).encrypt(b"\xa1\x00\x00"))


@pytest.mark.parametrize("volts", [0.0, 6.3, 12.64, 14.4, 40.95])
def test_encoded_notification_decodes_to_the_same_voltage(volts: float) -> None:
    assert BM2().decode(frames.bm2_voltage(volts, counter=250)) == Reading(voltage=volts)


def test_history_count_request_is_e7_01() -> None:
    assert ZeroIvCbc(BM2_KEY).decrypt(BM2().history_count_command()) == b"\xe7\x01" + bytes(14)


def test_history_count_reply_gives_a_big_endian_count() -> None:
    assert parse_history_count(bytes.fromhex("e7000123") + bytes(12)) == 0x123
    assert BM2().history_count(frames.bm2_history_count_reply(300)) == 300


def test_history_count_rejects_other_packets() -> None:
    with pytest.raises(DecodeError):
        parse_history_count(bytes.fromhex("f550816400fa"))


def test_history_download_request_is_e3_0000_and_a_4_byte_count() -> None:
    assert history_download_request(0x0102) == bytes.fromhex("e3000000000102")
    assert ZeroIvCbc(BM2_KEY).decrypt(BM2().history_download_command(5))[:7] == bytes.fromhex(
        "e3000000000005"
    )


def test_history_items_are_two_minutes_apart_the_last_at_download_time() -> None:
    # Item layout from KrystianD/bm2-battery-monitor bit_utils.decode_nibbles docstring:
    # 4d411111 = voltage 0x4d4, unused 1, crank 0x111, type 1.
    plain = [
        bytes.fromhex("fffffe") + bytes(13),  # start marker
        bytes.fromhex("4d4111114e2000005080000000000000"),  # 3 items + padding
        bytes.fromhex("fffefe000015") + bytes(10),  # 12 data bytes + 9 framing
    ]
    assert parse_history(plain, DOWNLOADED_AT) == [
        HistoryPoint(datetime(2026, 11, 22, 18, 56, tzinfo=UTC), 12.36, 2.73, 1),
        HistoryPoint(datetime(2026, 11, 22, 18, 58, tzinfo=UTC), 12.5, 0.0, 0),
        HistoryPoint(DOWNLOADED_AT, 12.88, 0.0, 0),
    ]


def test_history_without_an_end_marker_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        parse_history([bytes.fromhex("fffffe") + bytes(13), bytes(16)], DOWNLOADED_AT)


def test_history_whose_length_exceeds_its_data_raises_decode_error() -> None:
    plain = [bytes.fromhex("fffffe") + bytes(13), bytes(16), bytes.fromhex("fffefe0000ff")]
    with pytest.raises(DecodeError):
        parse_history(plain, DOWNLOADED_AT)


def test_encoded_history_download_round_trips() -> None:
    items = [(12.5, 10.1, 0), (12.6, 9.9, 1), (12.7, 0.0, 0), (12.8, 11.0, 2), (12.9, 11.0, 0)]
    points = BM2().history(frames.bm2_history_frames(items), DOWNLOADED_AT)
    assert [(p.voltage, p.min_crank_voltage, p.kind) for p in points] == items
    assert points[-1].timestamp == DOWNLOADED_AT
    assert points[0].timestamp == datetime(2026, 11, 22, 18, 52, tzinfo=UTC)


def test_empty_history_download_gives_no_items() -> None:
    assert BM2().history(frames.bm2_history_frames([]), DOWNLOADED_AT) == []


@given(st.binary(max_size=48))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        BM2().decode(data)


@given(st.lists(st.binary(max_size=20), max_size=6))
def test_random_history_frames_raise_only_decode_error(plain: list[bytes]) -> None:
    with contextlib.suppress(DecodeError):
        parse_history([b"\xff\xff\xfe", *plain], DOWNLOADED_AT)


# The Domoticz forum's unit (topic 28938): bytes 6..7 of its f5 frames are 03 7b.
DOMOTICZ = ["665aaae98cc9afc47a04c3ff6fd4a0e2", "c2c4748129952f499dfc733c50ae4585"]


@pytest.mark.parametrize("frame_hex", [c for c, _ in CAPTURES] + DOMOTICZ)
@pytest.mark.parametrize("key", [b"leagend\xff\xfe0100009", b"leagend\xff\xfe010000@", bytes(16)])
def test_every_capture_under_another_key_raises_decode_error(frame_hex: str, key: bytes) -> None:
    # DecodeError ("wrong key?"), or, for noise that starts like a history packet,
    # NotAReading (a DecodeError too): never a reading.
    with pytest.raises(DecodeError):
        BM2(key=key).decode(bytes.fromhex(frame_hex))


@given(st.integers(0, 0xFFF), st.binary(min_size=13, max_size=13), st.integers(0, 15))
def test_any_f5_frame_gives_its_voltage_whatever_the_firmware_puts_after_it(
    centivolts: int, tail: bytes, nibble: int
) -> None:
    plain = bytes([0xF5]) + ((centivolts << 4) | nibble).to_bytes(2, "big") + tail
    assert BM2().decode(ZeroIvCbc(BM2_KEY).encrypt(plain)) == Reading(voltage=centivolts / 100)


def test_history_skips_a_variant_live_frame_that_arrives_mid_download() -> None:
    variant = BM2().decrypt(bytes.fromhex(DOMOTICZ[0]))
    assert variant[6:8] == b"\x03\x7b"  # not zero: the old rule took it for data
    plain = [
        bytes.fromhex("fffffe") + bytes(13),
        bytes.fromhex("4d4111114e2000005080000000000000"),
        variant,
        bytes.fromhex("fffefe000015") + bytes(10),
    ]
    assert [p.voltage for p in parse_history(plain, DOWNLOADED_AT)] == [12.36, 12.5, 12.88]
