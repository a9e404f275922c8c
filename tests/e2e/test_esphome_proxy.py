"""`battery-hawk run` with an ESPHome proxy beside the local adapter (fake BlueZ), a real
mosquitto and the fake proxy: devices heard only by the proxy read through it, each
device read through the radio that hears it best, and the proxy killed and started again
is reconnected while the local adapter goes on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter, deque
from pathlib import Path

import yaml

from battery_hawk.models import BatteryState, Reading
from tests.e2e.test_daemon_run import write_config
from tests.esphome.conftest import KEY
from tests.fakebluez.controller import FakeBlueZ
from tests.fakeesphome.devices import bm6, victron
from tests.fakeesphome.server import FakeEsphomeProxy
from tests.support.brokers import Mosquitto, Subscriber, free_port, wait_until

REMOTE = "5A:00:00:00:00:01"  # heard only by the proxy
SHUNT = "5A:00:00:00:00:02"  # a Victron heard only by the proxy
NEAR_PROXY = "5A:00:00:00:00:03"  # both hear it; the proxy far better
NEAR_PI = "5A:00:00:00:00:04"  # both hear it; the Pi far better
SHUNT_KEY = bytes.fromhex("aff4d0995b7d1e176c0c33ecb9e70dcd")
READINGS = {
    REMOTE: Reading(voltage=12.61, soc=71.0, temperature=18.0, state=BatteryState.NORMAL),
    NEAR_PROXY: Reading(voltage=12.72, soc=80.0, temperature=19.0, state=BatteryState.NORMAL),
    NEAR_PI: Reading(voltage=12.83, soc=90.0, temperature=20.0, state=BatteryState.NORMAL),
}
SHUNT_READING = Reading(voltage=13.1, current=2.0, soc=95.0, consumed_ah=-1.5,
                        state=BatteryState.CHARGING)
WAIT = 60.0


async def collect(stream: asyncio.StreamReader, lines: deque[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode(errors="replace").rstrip())


def device_id(address: str) -> str:
    return address.replace(":", "").lower()


def readings(sub: Subscriber) -> Counter[str]:
    return Counter(topic.split("/")[2] for topic, payload in sub.messages
                   if topic.endswith("/readings") and payload)


def last(sub: Subscriber, address: str) -> dict[str, object]:
    topic = f"battery_hawk/device/{device_id(address)}/readings"
    return dict(json.loads(next(p for t, p in reversed(sub.messages) if t == topic and p)))


async def test_devices_are_read_through_the_radio_that_hears_them_best(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    fake_bluez.add_bm6(NEAR_PROXY, READINGS[NEAR_PROXY], rssi=-92)
    fake_bluez.add_bm6(NEAR_PI, READINGS[NEAR_PI], rssi=-48)
    proxy = FakeEsphomeProxy(
        [bm6(REMOTE, READINGS[REMOTE], rssi=-60), victron(SHUNT, SHUNT_KEY, SHUNT_READING),
         bm6(NEAR_PROXY, READINGS[NEAR_PROXY], rssi=-45),
         bm6(NEAR_PI, READINGS[NEAR_PI], rssi=-90)],
        encryption_key=KEY, advert_interval=0.3)
    await proxy.start()
    config = write_config(tmp_path, mosquitto.port, free_port(), [
        {"address": REMOTE, "type": "bm6", "name": "Van", "poll_interval": 1},
        {"address": SHUNT, "type": "victron", "name": "Shunt", "poll_interval": 1,
         "key": SHUNT_KEY.hex()},
        {"address": NEAR_PROXY, "type": "bm6", "name": "Shed", "poll_interval": 1},
        {"address": NEAR_PI, "type": "bm6", "name": "Garage", "poll_interval": 1}])
    data = yaml.safe_load(config.read_text())
    data["bluetooth"]["esphome_proxies"] = [
        {"host": "127.0.0.1", "port": proxy.port, "encryption_key": KEY}]
    config.write_text(yaml.safe_dump(data))
    sub = Subscriber(mosquitto.port, "battery_hawk/device/+/readings")
    await sub.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "run", "-c", str(config),
        env=fake_bluez.env(dict(os.environ)), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    log: deque[str] = deque(maxlen=200)  # the daemon's last log lines, read as they come
    assert proc.stderr is not None
    drain = asyncio.create_task(collect(proc.stderr, log), name="daemon-log")
    try:
        every = [device_id(a) for a in (REMOTE, SHUNT, NEAR_PROXY, NEAR_PI)]
        await wait_until(lambda: all(readings(sub)[d] >= 1 for d in every), timeout=WAIT)
        for address, reading in READINGS.items():
            got = last(sub, address)
            assert (got["voltage"], got["soc"]) == (reading.voltage, reading.soc), address
        shunt = last(sub, SHUNT)
        assert (shunt["voltage"], shunt["current"]) == (13.1, 2.0)

        # once each device has been visited, count where the next visits go
        before_proxy = dict(proxy.connects)
        before_pi = {a: fake_bluez.device_state(a)["connects"] for a in (NEAR_PROXY, NEAR_PI)}
        seen = readings(sub)
        await wait_until(lambda: all(readings(sub)[d] >= seen[d] + 3 for d in every),
                         timeout=WAIT)
        assert proxy.connects.get(NEAR_PROXY, 0) > before_proxy.get(NEAR_PROXY, 0)
        assert fake_bluez.device_state(NEAR_PROXY)["connects"] == before_pi[NEAR_PROXY]
        assert fake_bluez.device_state(NEAR_PI)["connects"] > before_pi[NEAR_PI]
        assert proxy.connects.get(NEAR_PI, 0) == before_proxy.get(NEAR_PI, 0)

        # the proxy dies: the Pi's device goes on; the proxy is back: so are its devices
        await proxy.kill()
        seen = readings(sub)
        await wait_until(lambda: readings(sub)[device_id(NEAR_PI)] >= seen[device_id(NEAR_PI)]
                         + 3, timeout=WAIT)
        await proxy.start()
        seen = readings(sub)
        await wait_until(lambda: readings(sub)[device_id(REMOTE)] >= seen[device_id(REMOTE)]
                         + 2 and readings(sub)[device_id(SHUNT)] >= seen[device_id(SHUNT)]
                         + 2, timeout=WAIT)
        assert proxy.sessions >= 2

        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()
            await drain
        assert proc.returncode == 0, "\n".join(log)
    except BaseException:
        print("\n".join(log))  # shown by pytest for a failed test
        raise
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        drain.cancel()
        await sub.stop()
        await proxy.kill()
