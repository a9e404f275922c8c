"""BM2 / BM6 advertisements: the iBeacon half and the encrypted block (leagend_advert)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import Advertisement, Reading
from battery_hawk.protocols import BM2, BM6, BM7
from battery_hawk.protocols._aes import ZeroIvCbc
from battery_hawk.protocols.bm6 import BM6_KEY
from battery_hawk.protocols.leagend_advert import (
    BM6_IBEACON_UUID,
    advert_blocks,
    ibeacon_uuid,
)
from battery_hawk.simulator import frames

ADDRESS = "50:54:7B:24:F7:B0"


def _block_advert(plain: bytes, key: bytes = BM6_KEY, address: str = ADDRESS) -> Advertisement:
    block = ZeroIvCbc(key).encrypt(plain)
    company = int.from_bytes(block[:2], "little")
    return Advertisement(address, manufacturer_data={company: block[2:]})


def test_ibeacon_uuid_is_read_from_apple_manufacturer_data() -> None:
    adv = Advertisement(ADDRESS, manufacturer_data={
        0x004C: bytes.fromhex("02153ba29cd9a42c894856badaf2606ef777114c0000cd")})
    assert ibeacon_uuid(adv) == BM6_IBEACON_UUID
    assert ibeacon_uuid(Advertisement(ADDRESS, manufacturer_data={0x004C: b"\x12\x19"})) is None


def test_the_block_is_rebuilt_from_its_company_id_bytes() -> None:
    adv = Advertisement(ADDRESS, manufacturer_data={0xFF11: bytes(14), 0x004C: bytes(23)})
    assert list(advert_blocks(adv)) == [b"\x11\xff" + bytes(14)]


def test_an_ibeacon_only_advert_carries_no_reading() -> None:
    adv = Advertisement(ADDRESS, manufacturer_data={
        0x004C: bytes.fromhex("02153ba29cd9a42c894856badaf2606ef777114c0000cd")})
    with pytest.raises(NotAReading):
        BM6().decode_advert(adv)


def test_a_state_of_charge_over_100_is_a_decode_error() -> None:
    plain = bytes.fromhex("50547b24f7b0") + b"\x05\x2f\x65"
    with pytest.raises(DecodeError, match="over 100"):
        BM6().decode_advert(_block_advert(plain))


def test_bm7_adverts_are_not_decoded() -> None:
    with pytest.raises(NotAReading):
        BM7().decode_advert(_block_advert(bytes(16)))


@example(centivolts=43263, soc=50, mac=bytes.fromhex("c0ffee000003"))  # BM6 block under 0x004C
@example(centivolts=20786, soc=50, mac=bytes.fromhex("c0ffee000003"))  # BM2 block under 0x004C
@given(
    centivolts=st.integers(0, 0xFFFF),
    soc=st.integers(0, 100),
    mac=st.binary(min_size=6, max_size=6),
)
def test_any_encoded_advert_round_trips(centivolts: int, soc: int, mac: bytes) -> None:
    address = ":".join(f"{b:02X}" for b in mac)
    reading = Reading(voltage=centivolts / 100, soc=float(soc))
    for driver, reversed_mac in ((BM6(), False), (BM2(), True)):
        data = frames.leagend_advert(reading, address, driver.key or b"",
                                     mac_reversed=reversed_mac)
        assert driver.decode_advert(Advertisement(address, manufacturer_data=data)) == reading


@given(st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=30), max_size=4))
def test_random_manufacturer_data_raises_only_decode_error(data: dict[int, bytes]) -> None:
    adv = Advertisement(ADDRESS, manufacturer_data=data)
    for driver in (BM2(), BM6(), BM7()):
        with contextlib.suppress(DecodeError):
            driver.decode_advert(adv)
