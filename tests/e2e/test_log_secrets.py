"""A whole `battery-hawk run` at DEBUG with a broker password and a device key: neither
ever reaches the log, and device lines carry their context fields."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import yaml

from battery_hawk.models import Reading
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber, free_port

VICTRON = "C8:47:80:00:00:0E"
BM2 = "C8:47:80:00:00:02"
KEY = "5b3e0a9f6c1d4e8a7b2c9d0e1f3a4b5c"
PASSWORD = "s3cret-Broker-Pass"
TOKEN = "admin-token-9f8e7d6c"


async def test_a_debug_run_never_logs_the_password_the_key_or_the_token(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    fake_bluez.add_victron(VICTRON, bytes.fromhex(KEY), Reading(voltage=13.1, soc=77.0))
    fake_bluez.add_bm2(BM2, [12.71, 12.69])
    config = {
        "gateway_id": "logs",
        "bluetooth": {"adapter": "hci0", "connect_timeout": 5, "scan_interval": 1},
        "mqtt": {"broker": "127.0.0.1", "port": mosquitto.port, "username": "hawk",
                 "password": PASSWORD},
        "devices": [
            {"address": VICTRON, "type": "victron", "name": "House", "poll_interval": 1,
             "key": KEY},
            {"address": BM2, "type": "bm2", "name": "Van", "poll_interval": 1},
        ],
        "http": {"enabled": True, "port": free_port(), "admin_token": TOKEN},
        "storage": {"path": str(tmp_path / "state")},
    }
    path = tmp_path / "battery-hawk.yaml"
    path.write_text(yaml.safe_dump(config))
    sub = Subscriber(mosquitto.port, "battery_hawk/device/+/state")
    await sub.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "run", "-c", str(path), "--log-level", "DEBUG",
        "--log-format", "json", env=fake_bluez.env(dict(os.environ)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await sub.wait_for(lambda m: {t.split("/")[2] for t, _ in m} >= {
            "c8478000000e", "c84780000002"}, timeout=60)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await sub.stop()
    text = err.decode()
    assert proc.returncode == 0, text[-2000:]
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert sum(1 for line in lines if line["level"] == "DEBUG") > 5  # it did talk
    for secret in (PASSWORD, KEY, KEY.upper(), TOKEN):
        assert secret not in text
    assert all(line.get("gateway_id") == "logs" for line in lines
               if line["logger"].startswith("battery_hawk.coordinator"))
    device_lines = [line for line in lines if "device_id" in line]
    assert device_lines and all(line["address"] in (VICTRON, BM2) for line in device_lines)
