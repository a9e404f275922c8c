"""A BM6 that advertises but refuses connections (as when the phone app holds it): the
daemon says the app or another gateway may hold it, once in the log, in /api/devices and
as the device's retained held_elsewhere attribute; a read clears it, once too."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path

from battery_hawk.models import Reading
from tests.e2e.test_daemon_run import write_config
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber, free_port, wait_until

BM6 = "C8:47:80:00:0D:06"
DID = BM6.replace(":", "").lower()
ATTRIBUTES = f"battery_hawk/device/{DID}/attributes"


def held(http_port: int) -> object:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/devices",
                                timeout=5) as response:
        data = json.loads(response.read())
    devices = data["devices"] if isinstance(data, dict) else data
    return next(d for d in devices if d["device_id"] == DID)["held_elsewhere"]


def reset_breaker(http_port: int) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/api/devices/{DID}/reset-breaker", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def attributes(sub: Subscriber) -> list[bool]:
    return [json.loads(p)["held_elsewhere"] for t, p in sub.messages if t == ATTRIBUTES and p]


async def read_lines(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))


async def test_a_monitor_held_by_the_phone_app_is_named_once_and_cleared_once(
        tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto) -> None:
    fake_bluez.add_bm6(BM6, Reading(voltage=12.6, soc=80, temperature=20.0))
    # five visits fail (BlueZ's plain failure, no retry), so the breaker opens and the
    # suspicion stands until an operator resets it
    fake_bluez.fail_next_connect(BM6, "org.bluez.Error.Failed", count=5,
                                 message="Input/output error")
    http_port = free_port()
    config = write_config(tmp_path, mosquitto.port, http_port,
                          [{"address": BM6, "type": "bm6", "poll_interval": 1}])
    sub = Subscriber(mosquitto.port, "battery_hawk/device/#")
    await sub.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "run", "-c", str(config),
        env=fake_bluez.env(), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    log: list[str] = []
    reader = asyncio.create_task(read_lines(proc.stderr, log), name="test-log-reader")
    try:
        await sub.wait_for(lambda _: attributes(sub)[-1:] == [True], timeout=60)
        message = await asyncio.to_thread(held, http_port)
        assert isinstance(message, str) and "phone app" in message

        reset_breaker(http_port)  # the app let go: the next visit reads it
        await sub.wait_for(lambda _: attributes(sub)[-1:] == [False], timeout=60)
        assert await asyncio.to_thread(held, http_port) is None
        assert attributes(sub) == [True, False]
        await wait_until(lambda: any("nobody else holds it" in line for line in log), 10)
        assert sum("phone app" in line for line in log) == 1
        discovery = Subscriber(mosquitto.port, f"homeassistant/sensor/battery_hawk_{DID}/#")
        await discovery.start()
        await discovery.wait_count(1)
        assert all(json.loads(p)["json_attributes_topic"] == ATTRIBUTES
                   for _, p in discovery.messages if p)
        await discovery.stop()
    finally:
        proc.terminate()
        async with asyncio.timeout(30):
            await proc.wait()
        await asyncio.gather(reader, return_exceptions=True)
        await sub.stop()
