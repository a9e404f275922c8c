"""`battery-hawk run` reads a BM6 ("Battery Guard") from its advertisement alone
(mode: passive): the fake BlueZ plays the captured advert, no connection is made."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from battery_hawk.models import BatteryState, Reading
from tests.e2e.test_daemon_run import write_config
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber, free_port

CASE = Path(__file__).resolve().parents[1] / "protocols" / "captures" / \
    "24_bm6_advert_battery_guard.json"


async def test_daemon_reads_a_passive_bm6_without_connecting(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    case = json.loads(CASE.read_text())
    address = case["advert"]["address"]
    device_id = address.replace(":", "").lower()
    fake_bluez.add_bm6(address, Reading(voltage=11.0, soc=1.0, state=BatteryState.NORMAL),
                       name=case["advert"]["name"])
    fake_bluez.set_advertisement(address, manufacturer_data={
        int(k): bytes.fromhex(v) for k, v in case["advert"]["manufacturer_data"].items()})
    config = write_config(tmp_path, mosquitto.port, free_port(), [
        {"address": address, "type": "bm6", "name": "Boat", "poll_interval": 1,
         "mode": "passive"}])
    sub = Subscriber(mosquitto.port, f"battery_hawk/device/{device_id}/state")
    await sub.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "run", "-c", str(config),
        env=fake_bluez.env(dict(os.environ)), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    try:
        await sub.wait_for(lambda m: any(p for _, p in m), timeout=60)
        state = json.loads(next(p for _, p in sub.messages if p))
        assert (state["voltage"], state["soc"]) == (case["expect"]["voltage"],
                                                    case["expect"]["soc"])
        assert fake_bluez.device_state(address)["connects"] == 0
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-3000:]
        assert fake_bluez.device_state(address)["connects"] == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await sub.stop()
