"""`battery-hawk run` with two local adapters (the fake BlueZ's hci0 and hci1), against a
real mosquitto: each device is read through the adapter that hears it best; unplugging
hci1 moves its device to hci0, plugging it in again moves it back, and so do switching
hci1 off for good and on again; a passive device heard on both adapters makes no
duplicate readings."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml

from battery_hawk.models import BatteryState, Reading
from tests.e2e.test_daemon_run import write_config
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber, free_port

HCI1_MAC = "00:1A:7D:DA:71:02"
NEAR_HCI0 = "C8:47:80:00:0A:01"  # heard at -48 dBm on hci0, -90 on hci1
NEAR_HCI1 = "C8:47:80:00:0A:02"  # heard at -90 dBm on hci0, -47 on hci1
SHUNT = "C8:47:80:00:0A:0E"  # a Victron heard by both, passive
SHUNT_KEY = bytes.fromhex("0df4d0395b7d1a876c0c33ecb9e70dcd")
IDS = {NEAR_HCI0: "c84780000a01", NEAR_HCI1: "c84780000a02", SHUNT: "c84780000a0e"}
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0, state=BatteryState.NORMAL)
HOUSE = Reading(voltage=12.5, soc=87.5, current=-1.25, consumed_ah=-3.4,
                remaining_mins=600.0, aux_voltage=12.7, state=BatteryState.DISCHARGING)


def readings(sub: Subscriber, device: str, start: int = 0) -> list[dict[str, object]]:
    topic = f"battery_hawk/device/{IDS[device]}/readings"
    return [json.loads(p) for t, p in sub.messages[start:] if t == topic and p]


def radios(sub: Subscriber, device: str, start: int = 0) -> list[object]:
    return [r.get("radio") for r in readings(sub, device, start)]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


async def api_radios(http_port: int) -> dict[str, object]:
    data = json.loads(await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/api/devices"))
    devices = data["devices"] if isinstance(data, dict) else data
    return {d["device_id"]: d["radio"] for d in devices}


async def test_each_device_is_read_through_the_adapter_that_hears_it_best(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    fake = fake_bluez
    fake.add_adapter("hci1", HCI1_MAC)
    fake.add_bm6(NEAR_HCI0, CAR, rssi=-48)
    fake.hear_on(NEAR_HCI0, "hci1", -90)
    fake.add_bm6(NEAR_HCI1, CAR, rssi=-90)
    fake.hear_on(NEAR_HCI1, "hci1", -47)
    fake.add_victron(SHUNT, SHUNT_KEY, HOUSE, rssi=-60)
    fake.hear_on(SHUNT, "hci1", -61)
    http_port = free_port()
    config = write_config(tmp_path, mosquitto.port, http_port, [
        {"address": NEAR_HCI0, "type": "bm6", "name": "Car", "poll_interval": 1,
         "mode": "poll"},
        {"address": NEAR_HCI1, "type": "bm6", "name": "Van", "poll_interval": 1,
         "mode": "poll"},
        {"address": SHUNT, "type": "victron", "name": "House", "poll_interval": 1,
         "key": SHUNT_KEY.hex()},
    ])
    settings = yaml.safe_load(config.read_text())
    del settings["bluetooth"]["adapter"]  # the default: every adapter BlueZ has
    config.write_text(yaml.safe_dump(settings))
    sub = Subscriber(mosquitto.port, "battery_hawk/device/#")
    await sub.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "run", "-c", str(config),
        env=fake.env(dict(os.environ)), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    try:
        # each device settles on the adapter that hears it best, and stays there
        await sub.wait_for(lambda _: radios(sub, NEAR_HCI0)[-3:] == ["hci0"] * 3
                           and radios(sub, NEAR_HCI1)[-3:] == ["hci1"] * 3, timeout=60)
        assert set(fake.device_state(NEAR_HCI0)["connects_by_adapter"]) <= {"hci0", "hci1"}
        api = await api_radios(http_port)
        assert (api[IDS[NEAR_HCI0]], api[IDS[NEAR_HCI1]]) == ("hci0", "hci1")
        state = [json.loads(p) for t, p in sub.messages
                 if t == f"battery_hawk/device/{IDS[NEAR_HCI1]}/state" and p]
        assert state[-1]["radio"] == "hci1"

        # hci1 unplugged: its device moves to hci0 and keeps publishing
        fake.remove_adapter("hci1")
        mark = len(sub.messages)
        await sub.wait_for(lambda _: radios(sub, NEAR_HCI1, mark)[-3:] == ["hci0"] * 3,
                           timeout=60)
        assert "hci0" in fake.device_state(NEAR_HCI1)["connects_by_adapter"]

        # plugged in again: it is used again
        fake.add_adapter("hci1", HCI1_MAC)
        mark = len(sub.messages)
        await sub.wait_for(lambda _: radios(sub, NEAR_HCI1, mark)[-3:] == ["hci1"] * 3,
                           timeout=60)
        assert radios(sub, NEAR_HCI0, mark)[-1] == "hci0"

        # hci1 switched off and rfkill-blocked, so that the daemon's power cycle cannot
        # bring it back: its device moves to hci0; unblocked and on, hci1 is used again
        fake.set_adapter_power(False, rfkill=True, adapter="hci1")
        mark = len(sub.messages)
        await sub.wait_for(lambda _: radios(sub, NEAR_HCI1, mark)[-3:] == ["hci0"] * 3,
                           timeout=60)
        fake.set_adapter_power(True, adapter="hci1")
        mark = len(sub.messages)
        await sub.wait_for(lambda _: radios(sub, NEAR_HCI1, mark)[-3:] == ["hci1"] * 3,
                           timeout=60)

        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
        log = err.decode()
        assert proc.returncode == 0, log[-3000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await sub.stop()

    messages = [json.loads(line)["message"] for line in log.splitlines() if line.startswith("{")]
    dropped = [m for m in messages if m.startswith("hci1 dropped")]
    assert len(dropped) == 2, messages  # unplugged, then switched off: once each
    assert "BlueZ removed it" in dropped[0]
    assert sum(m.startswith("hci1 is back") for m in messages) == 2, messages
    assert "Traceback" not in log
    assert not any("stopping discovery failed" in m for m in messages), messages

    # the passive Victron, heard on both adapters: one reading per poll interval (its
    # schedule; an advert heard twice would double that), whichever adapter heard it
    shunt = readings(sub, SHUNT)
    assert len(shunt) >= 3
    seqs = [r["seq"] for r in shunt]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    stamps = [datetime.fromisoformat(str(r["timestamp"])) for r in shunt]
    span = (stamps[-1] - stamps[0]).total_seconds()
    assert len(shunt) <= span / 1.0 + 2, (len(shunt), span)
    assert {r["radio"] for r in shunt} <= {"hci0", "hci1"}
    for device in (NEAR_HCI0, NEAR_HCI1):  # no reading lost or repeated across the moves
        seqs = [int(str(r["seq"])) for r in readings(sub, device)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (device, seqs)
