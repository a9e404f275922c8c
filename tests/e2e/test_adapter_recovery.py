"""`battery-hawk run` over a wedged adapter: it power-cycles it and reads again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from battery_hawk.models import BatteryState, Reading
from tests.e2e.test_daemon_run import _get, write_config
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber, free_port

BM6 = "C8:47:80:00:00:16"
STATE = "battery_hawk/device/c84780000016/state"
BEFORE = Reading(voltage=12.64, soc=81, temperature=20.0, state=BatteryState.NORMAL)
AFTER = Reading(voltage=12.31, soc=64, temperature=20.0, state=BatteryState.NORMAL)


def voltages(sub: Subscriber) -> list[float]:
    return [json.loads(p)["voltage"] for t, p in sub.messages if t == STATE and p]


async def test_daemon_power_cycles_a_stuck_adapter_and_reads_again(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    fake_bluez.add_bm6(BM6, BEFORE)
    http_port = free_port()
    config = write_config(tmp_path, mosquitto.port, http_port,
                          [{"address": BM6, "type": "bm6", "name": "Car", "poll_interval": 1}])
    sub = Subscriber(mosquitto.port, "battery_hawk/device/#")
    await sub.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "run", "-c", str(config),
        env=fake_bluez.env(dict(os.environ)), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        await sub.wait_for(lambda _: BEFORE.voltage in voltages(sub), timeout=60)

        fake_bluez.set_adapter_stuck("in-progress")  # every Connect: InProgress
        fake_bluez.set_leagend_reading(BM6, AFTER)  # only readable once the adapter heals

        await sub.wait_for(lambda _: AFTER.voltage in voltages(sub), timeout=60)
        adapter = fake_bluez.adapter_state()
        assert adapter["power_log"] == ["off", "on"]
        assert adapter["stuck"] == ""
        metrics = (await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/metrics")).decode()
        assert ('battery_hawk_adapter_recoveries_total{adapter="hci0",method="dbus",'
                'reason="stuck",result="ok"} 1.0') in metrics

        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-3000:]
        log = err.decode()
        assert log.count("power-cycling it") == 1, log[-3000:]
        assert "Traceback" not in log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await sub.stop()
