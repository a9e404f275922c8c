"""The fake BlueZ with two adapters, seen through the real bleak backend: one peripheral
heard on hci0 and hci1 at different RSSI, read through either adapter's device object,
and an adapter that is unplugged and plugged in again."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from battery_hawk.ble import BleakTransport, RadioSet, fetch_reading, scan_command
from battery_hawk.ble.adapters import AdapterInfo, AdapterWatch, list_adapters, select_adapters
from battery_hawk.ble.local import LocalAdapters
from battery_hawk.errors import BluetoothUnavailableError, TransportError
from battery_hawk.models import Advertisement, BatteryState, Reading
from battery_hawk.protocols import BM6
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import wait_until

ADDR = "AA:BB:CC:DD:E1:01"
HCI1_MAC = "00:1A:7D:DA:71:02"
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0, state=BatteryState.NORMAL)


async def _scan_once_back(adapter: str, timeout: float = 10.0) -> list[Advertisement]:
    """A scan on an adapter just plugged in: bleak learns of it by a signal that may
    arrive a moment after the fake's control call returned."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await BleakTransport(adapter).scan(1.0)
            except BluetoothUnavailableError:
                await asyncio.sleep(0.05)


@pytest.fixture
def two_adapters(fake_bluez: FakeBlueZ) -> FakeBlueZ:
    fake_bluez.add_adapter("hci1", HCI1_MAC)
    fake_bluez.add_bm6(ADDR, CAR, rssi=-52)
    fake_bluez.hear_on(ADDR, "hci1", -81)
    return fake_bluez


async def test_each_adapter_hears_the_same_peripheral_at_its_own_rssi(
    two_adapters: FakeBlueZ,
) -> None:
    heard = {}
    for adapter in ("hci0", "hci1"):
        adverts = await BleakTransport(adapter).scan(1.0)
        heard[adapter] = {a.address: a.rssi for a in adverts}
    assert heard == {"hci0": {ADDR: -52}, "hci1": {ADDR: -81}}
    assert two_adapters.device_state(ADDR)["heard_on"] == ["hci0", "hci1"]

    two_adapters.set_rssi(ADDR, -44, adapter="hci1")
    adverts = await BleakTransport("hci1").scan(1.0)
    assert [a.rssi for a in adverts] == [-44]


async def test_a_peripheral_is_read_through_whichever_adapter_connects(
    two_adapters: FakeBlueZ,
) -> None:
    reading = await fetch_reading(BleakTransport("hci1"), ADDR, BM6(), 10.0)
    assert reading.voltage == CAR.voltage
    assert two_adapters.device_state(ADDR)["connects_by_adapter"] == {"hci1": 1}

    reading = await fetch_reading(BleakTransport("hci0"), ADDR, BM6(), 10.0)
    assert reading.soc == CAR.soc
    assert two_adapters.device_state(ADDR)["connects_by_adapter"] == {"hci1": 1, "hci0": 1}


async def test_a_peripheral_holds_one_link_whichever_adapter_asks(
    two_adapters: FakeBlueZ,
) -> None:
    async with BleakTransport("hci0").connect(ADDR, timeout=5.0):
        assert two_adapters.device_state(ADDR)["adapter"] == "hci0"
        # bleak-retry-connector hands a second client the link that exists (on hci0):
        # BlueZ keeps one link per peripheral, whichever adapter asks
        async with BleakTransport("hci1").connect(ADDR, timeout=3.0) as link:
            assert link.is_connected
        assert two_adapters.device_state(ADDR)["connects"] == 1
    assert two_adapters.device_state(ADDR)["connected"] is False


async def test_an_unplugged_adapter_is_gone_until_plugged_in_again(
    two_adapters: FakeBlueZ,
) -> None:
    two_adapters.remove_adapter("hci1")
    assert two_adapters.device_state(ADDR)["heard_on"] == ["hci0"]
    with pytest.raises(TransportError):
        await BleakTransport("hci1").scan(0.5)
    reading = await fetch_reading(BleakTransport("hci0"), ADDR, BM6(), 10.0)
    assert reading.voltage == CAR.voltage

    two_adapters.add_adapter("hci1", HCI1_MAC)
    assert two_adapters.device_state(ADDR)["heard_on"] == ["hci0", "hci1"]
    adverts = await _scan_once_back("hci1")
    assert [(a.address, a.rssi) for a in adverts] == [(ADDR, -81)]
    reading = await fetch_reading(BleakTransport("hci1"), ADDR, BM6(), 10.0)
    assert reading.voltage == CAR.voltage
    assert two_adapters.device_state(ADDR)["connects_by_adapter"] == {"hci0": 1, "hci1": 1}


async def test_unplugging_the_adapter_of_a_link_drops_it(two_adapters: FakeBlueZ) -> None:
    async with BleakTransport("hci1").connect(ADDR, timeout=5.0) as link:
        assert link.is_connected
        two_adapters.remove_adapter("hci1")
        assert two_adapters.device_state(ADDR)["connected"] is False
    reading = await fetch_reading(BleakTransport("hci0"), ADDR, BM6(), 10.0)
    assert reading.voltage == CAR.voltage


# --- battery-hawk scan over every adapter -----------------------------------------------

NEAR_HCI1 = "AA:BB:CC:DD:E1:02"


async def test_scan_listens_on_every_adapter_and_names_the_one_that_heard_best(
    two_adapters: FakeBlueZ,
) -> None:
    two_adapters.add_bm6(NEAR_HCI1, CAR, rssi=-88)
    two_adapters.hear_on(NEAR_HCI1, "hci1", -45)

    found = await scan_command(None, 2.0)

    assert [(r.advertisement.address, r.advertisement.rssi, r.advertisement.radio)
            for r in found] == [(NEAR_HCI1, -45, "hci1"), (ADDR, -52, "hci0")]
    for adapter in ("hci0", "hci1"):
        assert two_adapters.adapter_state(adapter)["discovering"] is False


def test_scan_cli_shows_the_adapter_column_only_with_several_adapters(
    two_adapters: FakeBlueZ,
) -> None:
    done = subprocess.run([sys.executable, "-m", "battery_hawk", "scan", "--timeout", "2"],
                          env=two_adapters.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "listening on hci0, hci1:" in done.stderr
    table = done.stdout.splitlines()
    assert table[0].split()[:4] == ["ADDRESS", "RSSI", "ADAPTER", "TYPE"]
    assert table[1].split()[:4] == [ADDR, "-52", "hci0", "bm6"]

    one = subprocess.run([sys.executable, "-m", "battery_hawk", "scan", "--timeout", "1",
                          "--adapter", "hci1"], env=two_adapters.env(), capture_output=True,
                         text=True, timeout=60)
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines()[0].split()[:3] == ["ADDRESS", "RSSI", "TYPE"]
    assert one.stdout.splitlines()[1].split()[:3] == [ADDR, "-81", "bm6"]


# --- the adapters BlueZ has, and their comings and goings ----------------------------


async def test_the_watch_lists_adapters_and_hears_them_come_go_and_switch(
    fake_bluez: FakeBlueZ,
) -> None:
    added: list[AdapterInfo] = []
    removed: list[str] = []
    powered: list[tuple[str, bool]] = []
    watch = AdapterWatch(added.append, removed.append,
                         lambda name, on: powered.append((name, on)))
    async with watch as present:
        assert present == [AdapterInfo("hci0", "00:1A:7D:DA:71:01")]
        fake_bluez.add_adapter("hci1", HCI1_MAC)
        await wait_until(lambda: added == [AdapterInfo("hci1", HCI1_MAC)])
        fake_bluez.set_adapter_power(False, adapter="hci1")
        fake_bluez.set_adapter_power(True, adapter="hci1")
        await wait_until(lambda: powered == [("hci1", False), ("hci1", True)])
        fake_bluez.remove_adapter("hci1")
        await wait_until(lambda: removed == ["hci1"])
    assert await list_adapters() == [AdapterInfo("hci0", "00:1A:7D:DA:71:01")]


def test_adapters_are_selected_by_name_or_mac_in_bluez_order() -> None:
    present = [AdapterInfo("hci10", "00:00:00:00:00:0A"), AdapterInfo("hci1", HCI1_MAC),
               AdapterInfo("hci0", "00:1A:7D:DA:71:01")]
    assert [a.name for a in select_adapters(present, None)] == ["hci0", "hci1", "hci10"]
    assert [a.name for a in select_adapters(present, ["hci10", HCI1_MAC.lower()])] == [
        "hci1", "hci10"]
    assert select_adapters(present, ["hci7"]) == []


async def test_without_bluez_the_adapters_cannot_be_listed(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.stop_bluez()
    with pytest.raises(BluetoothUnavailableError):
        await list_adapters()


async def test_adapters_named_by_mac_join_under_their_name_and_late_ones_when_they_appear(
    fake_bluez: FakeBlueZ, caplog: pytest.LogCaptureFixture,
) -> None:
    radios = RadioSet()
    local = LocalAdapters(radios, [HCI1_MAC.lower(), "hci2"],
                          lambda name: BleakTransport(name, connect_timeout=5))
    try:
        # neither is there (hci0 is not wanted): both stand in as written, to say why
        assert await local.start() == (HCI1_MAC.lower(), "hci2")
        assert "used once it appears" in caplog.text
        fake_bluez.add_adapter("hci1", HCI1_MAC)  # takes its stand-in's place
        await wait_until(lambda: radios.names == ("hci2", "hci1"))
        fake_bluez.add_adapter("hci3", "00:1A:7D:DA:71:03")  # not wanted
        fake_bluez.add_adapter("hci2", "00:1A:7D:DA:71:04")
        await wait_until(lambda: radios.names == ("hci2", "hci1"))
        fake_bluez.remove_adapter("hci1")
        await wait_until(lambda: radios.names == ("hci2",))
        assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()] == [
            "hci1 dropped (BlueZ removed it); its devices move to hci2"]
    finally:
        await local.stop()
