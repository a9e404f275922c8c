"""`battery-hawk scan --esphome HOST:PORT` against the fake proxy, as a user runs it."""

from __future__ import annotations

import asyncio
import os
import sys

from battery_hawk.models import BatteryState, Reading
from tests.esphome.conftest import KEY, OTHER_KEY
from tests.fakeesphome.devices import bm6, victron
from tests.fakeesphome.server import FakeEsphomeProxy

SHUNT_KEY = bytes.fromhex("aff4d0995b7d1e176c0c33ecb9e70dcd")
READING = Reading(voltage=12.7, soc=80.0, temperature=20.0, state=BatteryState.NORMAL)


async def scan(port: int, *extra: str, env: dict[str, str] | None = None
               ) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "scan", "--esphome", f"127.0.0.1:{port}",
        "--timeout", "1", *extra, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_scan_lists_what_the_proxy_hears_with_a_devices_block() -> None:
    devices = [bm6("5A:00:00:00:00:01", READING, rssi=-51),
               victron("5A:00:00:00:00:02", SHUNT_KEY, READING, rssi=-70)]
    async with FakeEsphomeProxy(devices, encryption_key=KEY, name="van-proxy") as proxy:
        code, out, err = await scan(proxy.port, env={"BATTERY_HAWK_ESPHOME_KEY": KEY})
    assert code == 0, err
    assert "van-proxy, ESPHome 2025.11.0, 3 of 3 connection slot(s) free" in err
    rows = [line.split()[:3] for line in out.splitlines()[1:3]]
    assert rows == [["5A:00:00:00:00:01", "-51", "bm6"], ["5A:00:00:00:00:02", "-70", "victron"]]
    assert "  - address: 5A:00:00:00:00:01\n    type: bm6" in out


async def test_scan_with_a_wrong_key_fails_naming_the_key() -> None:
    async with FakeEsphomeProxy(encryption_key=KEY) as proxy:
        code, _, err = await scan(proxy.port, "--esphome-key", OTHER_KEY)
    assert code == 1
    assert "refused the encryption key" in err and "set --esphome-key" in err
    assert "retrying" not in err  # the scan ends: said once, as the failure that ends it


async def test_scan_logs_in_with_a_legacy_password() -> None:
    async with FakeEsphomeProxy([bm6("5A:00:00:00:00:01", READING, rssi=-51)],
                                password="secret") as proxy:
        code, _, err = await scan(proxy.port, "--esphome-password", "wrong")
        assert code == 1 and "refused the password" in err and "--esphome-password" in err
        code, out, err = await scan(proxy.port,
                                    env={"BATTERY_HAWK_ESPHOME_PASSWORD": "secret"})
    assert code == 0, err
    assert "5A:00:00:00:00:01" in out


async def test_scan_with_a_malformed_key_is_a_usage_error() -> None:
    code, _, err = await scan(6053, "--esphome-key", "not base64!")
    assert code == 2
    assert "--esphome-key" in err and "not base64" in err
