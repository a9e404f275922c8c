"""The pure parts: raw advertisements into Advertisement, a proxy's services into handles."""

from __future__ import annotations

import pytest
from aioesphomeapi.model import BluetoothGATTService

from battery_hawk.errors import DecodeError, TransportError
from battery_hawk.esphome.adverts import Heard, HeardTable, decode_raw_advertisement
from battery_hawk.esphome.gatt import GattTable
from battery_hawk.models import Advertisement
from tests.fakeesphome.adverts import encode_advertisement

# A BM6's advertisement as AD structures: flags 06, complete name "BM6", the 16-bit
# service UUID list fff0 (written out by hand from the Assigned Numbers' AD types).
BM6_AD = bytes.fromhex("020106" "0409424d36" "0303f0ff")


def test_raw_bm6_advertisement_becomes_our_model() -> None:
    assert decode_raw_advertisement(0x5A0000000001, -71, BM6_AD) == Advertisement(
        "5A:00:00:00:00:01", name="BM6", rssi=-71,
        service_uuids=("0000fff0-0000-1000-8000-00805f9b34fb",))


def test_manufacturer_and_service_data_are_kept() -> None:
    data = bytes.fromhex("020106" "06ffe1021002a3" "05160f1850aa")
    assert decode_raw_advertisement(0xC0FFEE000001, -50, data) == Advertisement(
        "C0:FF:EE:00:00:01", rssi=-50, manufacturer_data={0x02E1: bytes.fromhex("1002a3")},
        service_data={"0000180f-0000-1000-8000-00805f9b34fb": bytes.fromhex("50aa")})


def test_the_fake_proxys_encoder_is_the_parsers_inverse() -> None:
    adv = Advertisement("5A:00:00:00:00:09", name="SmartShunt", rssi=-80,
                        manufacturer_data={0x02E1: bytes(range(20))},
                        service_uuids=("12345678-1234-5678-1234-56789abcdef0",))
    assert decode_raw_advertisement(0x5A0000000009, -80, encode_advertisement(adv)) == adv


def test_an_address_beyond_48_bits_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_raw_advertisement(1 << 48, -50, BM6_AD)


def _service(uuid: str, handle: int, chars: list[dict[str, object]]) -> BluetoothGATTService:
    return BluetoothGATTService.from_dict({"uuid": uuid, "handle": handle,
                                           "characteristics": chars})


def test_gatt_table_finds_value_and_cccd_handles_by_uuid() -> None:
    table = GattTable.from_services("AA:BB:CC:DD:EE:01", [_service(
        "0000fff0-0000-1000-8000-00805f9b34fb", 16, [
            {"uuid": "0000fff3-0000-1000-8000-00805f9b34fb", "handle": 18, "properties": 0x0C,
             "descriptors": []},
            {"uuid": "0000FFF4-0000-1000-8000-00805F9B34FB", "handle": 20, "properties": 0x10,
             "descriptors": [{"uuid": "00002902-0000-1000-8000-00805f9b34fb", "handle": 21}]},
        ])])
    notify = table.get("0000fff4-0000-1000-8000-00805f9b34fb")
    assert (notify.handle, notify.cccd, notify.subscribe_value) == (20, 21, b"\x01\x00")
    assert table.get("0000FFF3-0000-1000-8000-00805F9B34FB").cccd is None
    with pytest.raises(TransportError, match="no characteristic"):
        table.get("00002a19-0000-1000-8000-00805f9b34fb")


def test_heard_table_keeps_the_latest_and_forgets_old_addresses_past_its_cap() -> None:
    table = HeardTable(cap=4, ttl=60.0)
    for i in range(4):
        table.note(f"AA:00:00:00:00:0{i}", Heard(-50 - i, 1, at=float(i)))
    table.note("AA:00:00:00:00:01", Heard(-40, 1, at=100.0))  # known: no pruning
    assert len(table) == 4
    table.note("AA:00:00:00:00:09", Heard(-70, 0, at=101.0))  # past the cap: stale ones go
    assert len(table) == 2
    assert table.get("AA:00:00:00:00:01") == Heard(-40, 1, 100.0)
    assert table.get("AA:00:00:00:00:00") is None


def test_heard_table_halves_itself_when_everything_is_fresh() -> None:
    table = HeardTable(cap=4, ttl=60.0)
    for i in range(5):
        table.note(f"AA:00:00:00:00:0{i}", Heard(-50, 0, at=float(i)))
    assert [table.get(f"AA:00:00:00:00:0{i}") is not None for i in range(5)] == [
        False, False, True, True, True]
