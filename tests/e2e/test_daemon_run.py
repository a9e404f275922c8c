"""`battery-hawk run` as systemd would start it, against the fake BlueZ and a real mosquitto.

An independent subscriber checks readings, discovery, availability and seq; the broker is
killed for ten readings' worth of time and comes back: no reading is lost. SIGTERM then
brings `offline` and exit code 0. sd_notify datagrams are read from a socket of our own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path

import yaml

from battery_hawk.models import BatteryState, Reading
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber, TcpGate, free_port

BM6 = "C8:47:80:00:00:06"
BM2 = "C8:47:80:00:00:02"
VICTRON = "C8:47:80:00:00:0E"
VICTRON_KEY = bytes.fromhex("0df4d0395b7d1a876c0c33ecb9e70dcd")
IDS = {BM6: "c84780000006", BM2: "c84780000002", VICTRON: "c8478000000e"}
UNITS = {"voltage": "V", "battery": "%", "temperature": "°C", "current": "A", "power": "W",
         "duration": "min", "energy": "kWh", "signal_strength": "dBm"}


DEVICES = [
    {"address": BM6, "type": "bm6", "name": "Car", "poll_interval": 1},
    {"address": BM2, "type": "bm2", "name": "Van", "poll_interval": 1},
    {"address": VICTRON, "type": "victron", "name": "House", "poll_interval": 1,
     "key": VICTRON_KEY.hex()},
]


def write_config(tmp_path: Path, broker_port: int, http_port: int,
                 devices: list[dict[str, object]] = DEVICES) -> Path:
    config = {
        "gateway_id": "e2e",
        "bluetooth": {"adapter": "hci0", "connect_timeout": 5, "scan_interval": 1},
        "mqtt": {"broker": "127.0.0.1", "port": broker_port, "keepalive": 10,
                 "initial_retry_delay": 0.2, "max_retry_delay": 1.0, "max_retries": 0,
                 "health_check_interval": 5},
        "devices": devices,
        "http": {"enabled": True, "listen": "127.0.0.1", "port": http_port},
        "logging": {"level": "INFO", "format": "json"},
        "storage": {"path": str(tmp_path / "state")},
    }
    path = tmp_path / "battery-hawk.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def seqs_by_device(sub: Subscriber) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    for topic, payload in sub.messages:
        if topic.endswith("/readings") and payload:
            found[topic.split("/")[2]].append(json.loads(payload)["seq"])
    return found


async def daemon_seqs(http_port: int) -> dict[str, int]:
    """The newest seq of each device, as the daemon's own API reports it."""
    url = f"http://127.0.0.1:{http_port}/api/devices"
    data = json.loads(await asyncio.to_thread(_get, url))
    devices = data["devices"] if isinstance(data, dict) else data
    return {d["device_id"]: (d["latest"] or {}).get("seq", 0) for d in devices}


async def read_datagrams(sock: socket.socket, into: list[str]) -> None:
    """Drain the notify socket as systemd would (a full queue must not stall the test)."""
    loop = asyncio.get_running_loop()
    while True:
        into.append((await loop.sock_recv(sock, 4096)).decode())


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body


async def test_daemon_end_to_end_over_fake_bluez_and_mosquitto(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    fake_bluez.add_bm6(BM6, Reading(voltage=12.64, soc=81, temperature=-3.0,
                                    state=BatteryState.NORMAL))
    fake_bluez.add_bm2(BM2, [12.71, 12.69, 12.70])
    fake_bluez.add_victron(VICTRON, VICTRON_KEY, Reading(voltage=13.1, current=-4.2, soc=77.0,
                                                         consumed_ah=-12.3,
                                                         remaining_mins=600))
    gate = TcpGate(mosquitto.port)  # lets the test decide when the daemon may reconnect
    await gate.start()
    http_port = free_port()
    config = write_config(tmp_path, gate.port, http_port)
    notify_path = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.setblocking(False)
    datagrams: list[str] = []
    reader = asyncio.create_task(read_datagrams(notify, datagrams), name="test-notify-reader")
    sub = Subscriber(mosquitto.port, "#")
    await sub.start()
    env = fake_bluez.env({**os.environ, "NOTIFY_SOCKET": notify_path,
                          "WATCHDOG_USEC": "3000000"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "run", "-c", str(config),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        # 1. readings of all three families arrive, with discovery and availability
        await sub.wait_for(lambda _: len(seqs_by_device(sub)) == 3 and all(
            len(s) >= 3 for s in seqs_by_device(sub).values()), timeout=60)
        states = {t.split("/")[2]: json.loads(p) for t, p in sub.messages
                  if t.endswith("/state") and p}
        assert set(states) == set(IDS.values())
        bm6 = states[IDS[BM6]]
        assert (bm6["voltage"], bm6["soc"], bm6["temperature"], bm6["state"]) == (
            12.64, 81, -3.0, "normal")
        assert bm6["model"] == "BM6" and bm6["current"] is None
        assert states[IDS[BM2]]["voltage"] in (12.71, 12.69, 12.7)
        victron = states[IDS[VICTRON]]
        assert (victron["voltage"], victron["current"], victron["soc"]) == (13.1, -4.2, 77.0)
        assert ("battery_hawk/gateway/e2e/status", b"online") in sub.messages
        for did in IDS.values():
            assert (f"battery_hawk/device/{did}/availability", b"online") in sub.messages
        discovery = [(t, json.loads(p)) for t, p in sub.messages
                     if t.startswith("homeassistant/") and p]
        sensors = [(t, d) for t, d in discovery if t.startswith("homeassistant/sensor/")]
        assert {d["device"]["identifiers"][0].rsplit("_", 1)[-1] for _, d in sensors} \
            >= set(IDS.values())
        for topic, doc in sensors:
            assert {"unique_id", "state_topic", "value_template", "device", "availability",
                    "expire_after"} <= set(doc), topic
            assert doc.get("state_class", "measurement") in ("measurement", "total_increasing")
            if doc.get("device_class") in UNITS:
                # the gateway's uptime is a duration in s, the devices' in min
                wanted = "s" if topic.endswith("/uptime/config") else UNITS[doc["device_class"]]
                assert doc["unit_of_measurement"] == wanted, topic
        assert any(t.startswith("homeassistant/binary_sensor/") for t, _ in discovery)

        # 2. the broker dies for ten readings' worth; nothing is lost
        mosquitto.kill()
        gate.shut()
        before = max(max(s) for s in seqs_by_device(sub).values())
        async with asyncio.timeout(60):
            while min((await daemon_seqs(http_port)).values()) < before + 10:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        await mosquitto.start_async()
        await sub.reconnect()
        gate.open()
        newest = await daemon_seqs(http_port)
        await sub.wait_for(lambda _: all(
            newest[did] in seqs_by_device(sub).get(did, []) for did in newest), timeout=60)
        for did, seqs in seqs_by_device(sub).items():
            assert set(range(1, max(seqs) + 1)) <= set(seqs), f"{did} lost readings"

        # 3. SIGTERM: offline arrives, exit code 0
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-3000:]
        await sub.wait_for(
            lambda m: m[-1:] == [("battery_hawk/gateway/e2e/status", b"offline")]
            or ("battery_hawk/gateway/e2e/status", b"offline") in m, timeout=10)
        assert b"Traceback" not in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await sub.stop()
        await gate.stop()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        with contextlib.suppress(BlockingIOError):
            while True:  # what arrived after the reader's last turn
                datagrams.append(notify.recv(4096).decode())
        notify.close()
    assert datagrams[0].startswith("READY=1")
    assert "WATCHDOG=1" in datagrams
    assert datagrams[-1] == "STOPPING=1"
