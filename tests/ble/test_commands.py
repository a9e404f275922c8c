"""`battery-hawk scan` and `battery-hawk read` as a user meets them (real bleak backend
over the fake BlueZ; the CLI in a subprocess where exit codes and streams matter)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from battery_hawk.ble import read_command, scan_command
from battery_hawk.ble.commands import ScanResult
from battery_hawk.ble_cli import devices_snippet, mac_address
from battery_hawk.cli import main
from battery_hawk.errors import ConnectTimeoutError, DecodeError
from battery_hawk.models import Advertisement, BatteryState, Reading
from battery_hawk.protocols import BM6, BM7
from battery_hawk.simulator import frames
from tests.fakebluez.controller import FakeBlueZ
from tests.fakebluez.peripherals import uuid16

BM6_ADDR = "AA:BB:CC:DD:EE:31"
BM7_ADDR = "AA:BB:CC:DD:EE:32"
VICTRON_ADDR = "AA:BB:CC:DD:EE:34"
OTHER_ADDR = "AA:BB:CC:DD:EE:36"
VICTRON_KEY = bytes.fromhex("0df4d0395b7d1a876c0c33ecb9e70dcd")
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0, state=BatteryState.NORMAL)
SHUNT = Reading(voltage=12.5, soc=87.5, current=-1.25, consumed_ah=-3.4, remaining_mins=600.0,
                aux_voltage=12.7, state=BatteryState.DISCHARGING)


def cli(fake: FakeBlueZ, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "battery_hawk", *args],
                          env=fake.env(dict(os.environ)), capture_output=True, text=True,
                          timeout=120)


# --- read: the address first, then what the unit said ---------------------------------


@pytest.mark.parametrize("bad", ["AA:BB:CC:DD:EE", "AA:BB:CC:DD:EE:GG", "hci0", "AABBCCDDEEFF",
                                 "AA:BB-CC:DD:EE:FF"])
def test_read_refuses_a_malformed_address_as_bad_usage(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["read", bad, "--type", "bm6"]) == 2
    err = capsys.readouterr().err
    assert "is not a MAC address like AA:BB:CC:DD:EE:FF" in err
    assert "battery-hawk scan" in err


def test_mac_addresses_are_normalised() -> None:
    assert mac_address(" aa:bb:cc:dd:ee:0f ") == "AA:BB:CC:DD:EE:0F"


async def test_bm7_request_to_a_bm6_names_the_family_it_advertises(
    fake_bluez: FakeBlueZ,
) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)  # answers only requests under the BM6 key

    with pytest.raises(ConnectTimeoutError) as caught:
        await read_command("hci0", BM6_ADDR, "bm7", None, timeout=1.5)
    message = str(caught.value)
    assert "did not answer a bm7 request at all" in message
    assert f"`battery-hawk read {BM6_ADDR} --type bm6`" in message


async def test_a_reply_in_another_family_format_is_named(fake_bluez: FakeBlueZ) -> None:
    # a unit that advertises under no known name and answers anything with a BM6 frame
    fake_bluez.add_device(BM7_ADDR, "ZZ-1", service_uuids=[uuid16(0xFFF0)])
    service = fake_bluez.add_service(BM7_ADDR, uuid16(0xFFF0))
    fake_bluez.add_characteristic(service, uuid16(0xFFF3), ["write"])
    fake_bluez.add_characteristic(service, uuid16(0xFFF4), ["notify"])
    fake_bluez.add_responder(BM7_ADDR, uuid16(0xFFF3), uuid16(0xFFF4),
                             [frames.bm6_reply(CAR, frames.BM6_KEY)])

    with pytest.raises((ConnectTimeoutError, DecodeError)) as caught:
        await read_command("hci0", BM7_ADDR, "bm7", None, timeout=1.5)
    assert "answered in the bm6 format: it is a bm6, not a bm7" in str(caught.value)
    assert await read_command("hci0", BM7_ADDR, "bm6", None, timeout=5) == CAR


async def test_a_silent_unknown_unit_gets_the_scan_suggestion(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_device(BM7_ADDR, "ZZ-1", service_uuids=[uuid16(0xFFF0)])
    service = fake_bluez.add_service(BM7_ADDR, uuid16(0xFFF0))
    fake_bluez.add_characteristic(service, uuid16(0xFFF3), ["write"])
    fake_bluez.add_characteristic(service, uuid16(0xFFF4), ["notify"])

    with pytest.raises(ConnectTimeoutError) as caught:
        await read_command("hci0", BM7_ADDR, "bm7", None, timeout=1.0)
    assert "did not answer a bm7 request at all" in str(caught.value)
    assert "run `battery-hawk scan`" in str(caught.value)


def test_read_cli_exits_1_with_the_family_hint(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)

    done = cli(fake_bluez, "read", BM6_ADDR.lower(), "--type", "bm7", "--timeout", "1.5")

    assert done.returncode == 1, done.stderr
    assert "--type bm6" in done.stderr
    assert "Traceback" not in done.stderr
    ok = cli(fake_bluez, "read", BM6_ADDR.lower(), "--type", "bm6", "--timeout", "5")
    assert ok.returncode == 0, ok.stderr
    assert yaml.safe_load(ok.stdout)["voltage"] == CAR.voltage  # JSON is YAML


# --- scan: progress, recognised first, a devices: snippet ------------------------------


async def test_scan_lists_recognised_devices_first_and_reports_progress(
    fake_bluez: FakeBlueZ,
) -> None:
    fake_bluez.add_device(OTHER_ADDR, "Toothbrush", rssi=-40)
    fake_bluez.add_bm6(BM6_ADDR, CAR, rssi=-70)
    fake_bluez.add_victron(VICTRON_ADDR, VICTRON_KEY, SHUNT, rssi=-60)
    ticks: list[tuple[int, int]] = []

    found = await scan_command("hci0", 2.0, on_progress=lambda seen, known: ticks.append(
        (seen, known)))

    assert [(r.advertisement.address, r.family) for r in found] == [
        (VICTRON_ADDR, "victron"), (BM6_ADDR, "bm6"), (OTHER_ADDR, None)]
    assert len(ticks) >= 2
    assert ticks[0] == (0, 0) and ticks[-1] == (3, 2)
    assert fake_bluez.adapter_state()["discovering"] is False


def test_scan_cli_prints_a_devices_snippet_that_loads(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR, rssi=-50)
    fake_bluez.add_victron(VICTRON_ADDR, VICTRON_KEY, SHUNT, rssi=-60)
    fake_bluez.add_device(OTHER_ADDR, "Toothbrush", rssi=-40)

    done = cli(fake_bluez, "scan", "--timeout", "2")

    assert done.returncode == 0, done.stderr
    assert "listening on hci0:" in done.stderr
    table, _, snippet = done.stdout.partition("devices:\n")
    rows = [line.split()[0] for line in table.splitlines()[1:] if line.strip()
            and not line.startswith("#")]
    assert rows == [BM6_ADDR, VICTRON_ADDR, OTHER_ADDR]
    devices = yaml.safe_load("devices:\n" + snippet)["devices"]
    assert devices == [
        {"address": BM6_ADDR, "type": "bm6", "name": "BM6"},
        {"address": VICTRON_ADDR, "type": "victron", "name": "SmartShunt HQ2207",
         "key": "REPLACE_WITH_32_HEX_DIGITS"},
    ]
    assert "Instant readout details" in snippet


def test_the_snippet_quotes_awkward_names() -> None:
    adv = Advertisement(address=BM6_ADDR, name='Van: "rear" #2', rssi=-50)
    nameless = Advertisement(address=BM7_ADDR, name=None, rssi=-55)
    lines = devices_snippet([ScanResult(adv, BM6.family, "name"),
                             ScanResult(nameless, BM7.family, "iBeacon"),
                             ScanResult(Advertisement(address=OTHER_ADDR), None, None)])
    assert yaml.safe_load("\n".join(lines))["devices"] == [
        {"address": BM6_ADDR, "type": "bm6", "name": 'Van: "rear" #2'},
        {"address": BM7_ADDR, "type": "bm7", "name": "BM7 EE32"},
    ]


def test_read_cli_in_progress_asks_whether_the_daemon_holds_the_adapter(
    fake_bluez: FakeBlueZ,
) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    fake_bluez.set_adapter_stuck("in-progress")

    done = cli(fake_bluez, "read", BM6_ADDR, "--type", "bm6", "--timeout", "5")

    assert done.returncode == 1, done.stderr
    assert "sudo systemctl stop battery-hawk" in done.stderr
    assert fake_bluez.adapter_state()["power_log"] == []  # a command never power-cycles
