"""The registry: config type names, recognition from adverts, key parsing."""

from __future__ import annotations

import pytest

from battery_hawk.errors import BatteryHawkError, UnknownDeviceType
from battery_hawk.models import Advertisement
from battery_hawk.protocols import (
    BM2,
    BM6,
    BM7,
    DRIVERS,
    BatteryService,
    Match,
    Mode,
    Victron,
    get_driver,
    identify,
    parse_key,
    recognise,
    uuid16,
)

ADDRESS = "AA:BB:CC:DD:EE:01"


@pytest.mark.parametrize(
    ("name", "driver"),
    [
        ("bm2", BM2),
        ("bm6", BM6),
        ("bm7", BM7),
        ("victron", Victron),
        ("bas", BatteryService),
        ("BM300", BM7),
        ("bm300pro", BM7),
        ("bm200", BM6),
        (" BM6 ", BM6),
    ],
)
def test_type_names_and_aliases_pick_their_driver(name: str, driver: type) -> None:
    assert get_driver(name) is driver


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(UnknownDeviceType) as info:
        get_driver("bm9")
    message = str(info.value)
    assert "'bm9'" in message and "bm2, bm200" in message and "victron" in message
    assert isinstance(info.value, BatteryHawkError) and isinstance(info.value, KeyError)


def test_every_family_declares_how_it_is_talked_to() -> None:
    for driver in set(DRIVERS.values()):
        assert driver.family in DRIVERS
        if driver.mode is Mode.POLL:
            assert driver.write_uuid and driver.notify_uuid
        if driver.mode is Mode.NOTIFY:
            assert driver.notify_uuid
        if driver.mode is Mode.READ:
            assert driver.read_uuid == uuid16(0x2A19)


@pytest.mark.parametrize(
    ("adv", "driver", "reason"),
    [
        (Advertisement(ADDRESS, name="BM6"), BM6, "name 'BM6'"),
        (Advertisement(ADDRESS, name="Intact BM6"), BM6, "name 'Intact BM6'"),
        (Advertisement(ADDRESS, name="BM300 Pro"), BM7, "name 'BM300 Pro'"),
        (Advertisement(ADDRESS, name="Battery Monitor"), BM2, "name 'Battery Monitor'"),
        (Advertisement(ADDRESS, name="ZX-1689"), BM2, "name 'ZX-1689'"),
        (Advertisement(ADDRESS, name="Li Battery Monitor"), BM2, "name 'Li Battery Monitor'"),
        (Advertisement(ADDRESS, name="Battery Guard"), BM6, "name 'Battery Guard'"),
        (Advertisement(ADDRESS, name="BM200"), BM6, "name 'BM200'"),
        (
            Advertisement(ADDRESS, name="SmartShunt", manufacturer_data={0x02E1: b"\x10\x02"}),
            Victron,
            "manufacturer data 0x02e1 (Victron instant readout)",
        ),
        (
            Advertisement(ADDRESS, service_uuids=(uuid16(0x180F).upper(),)),
            BatteryService,
            "service uuid 0x180f (Battery Service)",
        ),
    ],
)
def test_recognise_says_which_family_and_why(adv: Advertisement, driver: type, reason: str) -> None:
    assert identify(adv) == Match(driver, reason)
    assert recognise(adv) is driver


def test_unrelated_advert_is_not_recognised() -> None:
    adv = Advertisement(ADDRESS, name="Fridge", manufacturer_data={0x004C: b"\x02\x15"})
    assert identify(adv) is None
    assert recognise(adv) is None


def test_victron_beats_a_battery_service_uuid() -> None:
    adv = Advertisement(
        ADDRESS, manufacturer_data={0x02E1: b"\x10\x00"}, service_uuids=(uuid16(0x180F),)
    )
    assert recognise(adv) is Victron


@pytest.mark.parametrize(
    "text",
    [
        "0da694539597f9cf6c613cde60d7bf05",
        "0x0DA694539597F9CF6C613CDE60D7BF05",
        "0d:a6:94:53:95:97:f9:cf:6c:61:3c:de:60:d7:bf:05",
        " 0da69453 9597f9cf 6c613cde 60d7bf05 ",
    ],
)
def test_parse_key_accepts_hex_with_separators(text: str) -> None:
    assert parse_key(text) == bytes.fromhex("0da694539597f9cf6c613cde60d7bf05")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("abcd", "a key is 32 hex digits; you gave 4"),
        ("0da694539597f9cf6c613cde60d7bf0", "a key is 32 hex digits; you gave 31"),
        ("0da694539597f9cf6c613cde60d7bf051", "a key is 32 hex digits; you gave 33"),
        ("zz" * 16, "'z' at position 1 is not a hex digit"),
        ("0da69453 9597f9cf 6c613cde 60d7bf0o", "'o' at position 35 is not a hex digit"),
    ],
)
def test_parse_key_rejects_bad_keys_without_echoing_them(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        parse_key(text)
    assert text not in str(info.value)


def test_key_override_must_be_16_bytes() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        BM6(key=b"short")
