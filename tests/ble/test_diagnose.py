"""No D-Bus, no BlueZ, no adapter, adapter off, rfkill: scan, read and the transport say
what is wrong and what to do (real bleak backend over the fake BlueZ)."""

from __future__ import annotations

from pathlib import Path

import pytest

from battery_hawk.ble import BleakTransport, read_command, scan_command
from battery_hawk.ble.diagnose import diagnose, rfkill_state
from battery_hawk.errors import AdapterNotReadyError, BluetoothUnavailableError
from battery_hawk.models import BatteryState, Reading
from tests.fakebluez.controller import FakeBlueZ

BM6_ADDR = "AA:BB:CC:DD:EE:21"
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0, state=BatteryState.NORMAL)
RAW = ("[Errno", "ServiceUnknown", "org.freedesktop.DBus.Error", "Traceback")


def no_raw_errors(text: str) -> None:
    for raw in RAW:
        assert raw not in text, text


@pytest.fixture
def no_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    address = f"unix:path={tmp_path}/no_system_bus_socket"
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
    return address


async def test_no_dbus_daemon_names_the_socket_and_the_fix(no_bus: str) -> None:
    with pytest.raises(BluetoothUnavailableError) as caught:
        await scan_command("hci0", 0.5)
    message = str(caught.value)
    assert no_bus.removeprefix("unix:path=") in message
    assert "systemctl status dbus" in message
    no_raw_errors(message)


def test_scan_and_read_commands_without_dbus_exit_1_with_advice(no_bus: str) -> None:
    import os
    import subprocess
    import sys

    for args in (["scan", "--timeout", "0.5"], ["read", BM6_ADDR, "--type", "bm6"]):
        done = subprocess.run([sys.executable, "-m", "battery_hawk", *args], env=dict(os.environ),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert "systemctl status dbus" in done.stderr
        no_raw_errors(done.stderr)


async def test_bluez_not_running_asks_about_bluetooth_service(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.stop_bluez()

    for attempt in (scan_command("hci0", 0.5), read_command("hci0", BM6_ADDR, "bm6", None, 1)):
        with pytest.raises(BluetoothUnavailableError) as caught:
            await attempt
        assert "is bluetooth.service running? `systemctl status bluetooth`" in str(caught.value)
        no_raw_errors(str(caught.value))


async def test_missing_adapter_lists_the_ones_there(fake_bluez: FakeBlueZ) -> None:
    with pytest.raises(BluetoothUnavailableError) as caught:
        await scan_command("hci7", 0.5)
    assert "no Bluetooth adapter hci7" in str(caught.value)
    assert "hci0 (00:1A:7D:DA:71:01)" in str(caught.value)
    assert "bluetoothctl list" in str(caught.value)


async def test_powered_off_adapter_says_bluetoothctl_power_on(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    fake_bluez.set_adapter_power(False)

    with pytest.raises(AdapterNotReadyError, match="hci0 is powered off: `bluetoothctl power on`"):
        await scan_command("hci0", 0.5)
    with pytest.raises(AdapterNotReadyError, match="bluetoothctl power on"):
        await read_command("hci0", BM6_ADDR, "bm6", None, 2)
    assert fake_bluez.adapter_state()["power_log"] == []  # a one-off command does not power it


async def test_rfkill_blocked_adapter_says_rfkill_unblock(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.set_adapter_power(False, rfkill=True)

    with pytest.raises(AdapterNotReadyError) as caught:
        await BleakTransport("hci0").scan(0.5)
    assert "rfkill unblock bluetooth" in str(caught.value)
    no_raw_errors(str(caught.value))


async def test_a_working_stack_has_nothing_to_report(fake_bluez: FakeBlueZ) -> None:
    assert await diagnose("hci0") is None
    assert await diagnose("00:1a:7d:da:71:01") is None


def test_rfkill_state_reads_sysfs(tmp_path: Path) -> None:
    def radio(name: str, kind: str, soft: int, hard: int) -> None:
        entry = tmp_path / name
        entry.mkdir()
        for key, value in (("type", kind), ("soft", soft), ("hard", hard)):
            (entry / key).write_text(f"{value}\n")

    assert rfkill_state(tmp_path) is None
    radio("rfkill0", "wlan", 1, 1)
    radio("rfkill1", "bluetooth", 0, 0)
    assert rfkill_state(tmp_path) is None
    radio("rfkill2", "bluetooth", 1, 0)
    assert rfkill_state(tmp_path) == "soft"
    radio("rfkill3", "bluetooth", 0, 1)
    assert rfkill_state(tmp_path) == "hard"
    assert rfkill_state(tmp_path / "missing") is None
