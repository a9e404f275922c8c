"""SIGHUP re-reads the device list: new devices start, removed ones lose their entities."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from battery_hawk.models import Reading
from tests.e2e.test_daemon_run import write_config
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber, free_port, wait_until

FIRST = "C8:47:80:00:01:06"
SECOND = "C8:47:80:00:02:06"


def device(address: str) -> dict[str, object]:
    return {"address": address, "type": "bm6", "poll_interval": 1}


def has_state(sub: Subscriber, address: str) -> bool:
    did = address.replace(":", "").lower()
    return any(t == f"battery_hawk/device/{did}/state" and p for t, p in sub.messages)


async def test_sighup_adds_and_removes_devices(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    fake_bluez.add_bm6(FIRST, Reading(voltage=12.5, soc=70, temperature=20.0))
    fake_bluez.add_bm6(SECOND, Reading(voltage=12.9, soc=95, temperature=21.0))
    config = write_config(tmp_path, mosquitto.port, free_port(), [device(FIRST)])
    sub = Subscriber(mosquitto.port, "#")
    await sub.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "run", "-c", str(config),
        env=fake_bluez.env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    log: list[str] = []
    reader = asyncio.create_task(read_lines(proc.stderr, log), name="test-log-reader")
    try:
        await sub.wait_for(lambda _: has_state(sub, FIRST), timeout=30)
        assert not has_state(sub, SECOND)

        write_config(tmp_path, mosquitto.port, free_port(), [device(FIRST), device(SECOND)])
        proc.send_signal(signal.SIGHUP)
        await sub.wait_for(lambda _: has_state(sub, SECOND), timeout=30)

        config.write_text("devices: [{address: nonsense}]\n")  # a broken edit is refused
        proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: any("keeping the running configuration" in line
                                     for line in log), timeout=30)
        write_config(tmp_path, mosquitto.port, free_port(), [device(SECOND)])
        proc.send_signal(signal.SIGHUP)
        first = FIRST.replace(":", "").lower()
        await sub.wait_for(lambda m: (f"battery_hawk/device/{first}/state", b"") in m,
                           timeout=30)
        assert any(t.startswith("homeassistant/") and first in t and p == b""
                   for t, p in sub.messages)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()
            await reader
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        await sub.stop()
    assert proc.returncode == 0
    records = [json.loads(line) for line in log if line.startswith("{")]
    refused = [r["message"] for r in records if "keeping the running" in r["message"]]
    assert len(refused) == 1 and "devices[0]" in refused[0]
    assert any("configuration reloaded" in r["message"] for r in records)


async def read_lines(stream: asyncio.StreamReader, into: list[str]) -> None:
    async for line in stream:
        into.append(line.decode())
