"""Field captures played by the fake BlueZ and read through the real bleak backend: a BM2
on the firmware that sends variant frames, a BM6 sold as "Battery Guard", a BM6 read
from its advertisement alone. The captures and their sources are in
tests/protocols/captures/."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from battery_hawk.ble import BleakTransport, read_command, scan_command, stream_readings
from battery_hawk.models import BatteryState, Reading
from battery_hawk.protocols import BM2, BM6
from tests.fakebluez.controller import FakeBlueZ
from tests.fakebluez.peripherals import uuid16

CAPTURES = Path(__file__).resolve().parents[1] / "protocols" / "captures"
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0, state=BatteryState.NORMAL)


def capture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURES / name).read_text())
    return data


def manufacturer_data(case: dict[str, Any]) -> dict[int, bytes]:
    return {int(k): bytes.fromhex(v) for k, v in case["advert"]["manufacturer_data"].items()}


async def test_bm2_streaming_the_variant_frames_reads(fake_bluez: FakeBlueZ) -> None:
    case = capture("02_bm2_domoticz_12v79.json")
    address = "C8:47:80:00:02:79"
    fake_bluez.add_bm2(address, [12.0])
    fake_bluez.set_stream(address, uuid16(0xFFF4), [bytes.fromhex(f) for f in case["frames"]],
                          interval=0.02)
    received: list[Reading] = []

    async with (
        BleakTransport("hci0", connect_timeout=5).connect(address) as link,
        asyncio.timeout(5),
        contextlib.aclosing(stream_readings(link, BM2())) as stream,
    ):
        async for reading in stream:
            received.append(reading)
            if len(received) == len(case["frames"]):
                break

    assert [r.voltage for r in received] == [e["voltage"] for e in case["expect_each"]]
    assert await read_command("hci0", address, "bm2", None, timeout=5) == Reading(
        voltage=case["expect_each"][0]["voltage"])


async def test_battery_guard_rebrand_is_recognised_by_scan_and_read(
    fake_bluez: FakeBlueZ,
) -> None:
    case = capture("03_bm6_battery_guard_advert.json")
    address = case["advert"]["address"]
    fake_bluez.add_bm6(address, CAR, name=case["advert"]["name"])
    fake_bluez.set_advertisement(address, manufacturer_data=manufacturer_data(case))

    found = await scan_command("hci0", 1.5)

    assert [(r.advertisement.address, r.advertisement.name, r.family) for r in found] == [
        (address, "Battery Guard", case["expect"]["family"])]
    assert await read_command("hci0", address, "bm6", None, timeout=5) == CAR


async def test_passive_bm6_is_read_from_its_advert_without_a_connection(
    fake_bluez: FakeBlueZ,
) -> None:
    case = capture("24_bm6_advert_battery_guard.json")
    address = case["advert"]["address"]
    fake_bluez.add_bm6(address, CAR, name=case["advert"]["name"])
    fake_bluez.set_advertisement(address, manufacturer_data=manufacturer_data(case))
    driver = BM6()

    adverts = BleakTransport("hci0").advertisements()
    try:
        async with asyncio.timeout(5):
            async for adv in adverts:
                if adv.address == address:
                    reading = driver.decode_advert(adv)
                    break
    finally:
        await adverts.aclose()  # type: ignore[attr-defined]

    assert (reading.voltage, reading.soc) == (case["expect"]["voltage"], case["expect"]["soc"])
    assert fake_bluez.device_state(address)["connects"] == 0
