"""Gap fill end to end: `battery-hawk run` stopped for 20 minutes of device time, restarted.

The fake BM6 keeps a memory (tests/fakebluez/history.py) whose clock the test advances by
20 minutes while the daemon is down; the daemon's own record of its last reading
(history.json under storage.path) is moved back by the same 20 minutes, which is all a
real 20-minute stop would change on the gateway's side. A subscriber on `readings`
must get the missing 2-minute points once, inside the gap, oldest first, without seq;
the live seq stream goes on unaffected. A shutdown during a download exits at once and
the next start fills the gap.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from battery_hawk.models import Reading
from battery_hawk.protocols._aes import ZeroIvCbc
from battery_hawk.protocols.bm6 import BM6_KEY
from tests.fakebluez.controller import FakeBlueZ
from tests.fakebluez.history import DeviceMemory, add_history
from tests.support.brokers import Mosquitto, Subscriber, free_port, wait_until

ADDR = "C8:47:80:00:00:16"
DID = "c84780000016"
BEFORE = Reading(voltage=12.64, soc=81.0, temperature=18.0)
DURING = Reading(voltage=12.31, soc=62.0, temperature=9.0)  # what the device saw meanwhile
AFTER = Reading(voltage=12.48, soc=70.0, temperature=12.0)  # live again after the restart
MIN = timedelta(minutes=1)


def _config(tmp_path: Path, port: int, connect_timeout: float = 5,
            http_port: int | None = None) -> Path:
    config = {
        "gateway_id": "e2e",
        "bluetooth": {"adapter": "hci0", "connect_timeout": connect_timeout,
                      "scan_interval": 1},
        "mqtt": {"broker": "127.0.0.1", "port": port, "keepalive": 10,
                 "initial_retry_delay": 0.2, "max_retry_delay": 1.0, "max_retries": 0},
        "devices": [{"address": ADDR, "type": "bm6", "name": "Car", "poll_interval": 1,
                     "mode": "poll"}],
        "http": {"enabled": True, "listen": "127.0.0.1", "port": http_port or free_port()},
        "logging": {"level": "INFO", "format": "json"},
        "storage": {"path": str(tmp_path / "state")},
    }
    path = tmp_path / "battery-hawk.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Daemon:
    def __init__(self, config: Path, fake: FakeBlueZ, log: Path) -> None:
        self.config, self.fake, self.log = config, fake, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "battery_hawk", "run", "-c", str(self.config),
                env=self.fake.env(), stdout=asyncio.subprocess.DEVNULL, stderr=err)

    async def stop(self, within: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(within):
            code = await self.proc.wait()
        assert b"Traceback" not in self.log.read_bytes()
        return code

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def _docs(sub: Subscriber) -> list[dict[str, object]]:
    return [json.loads(p) for t, p in sub.messages if t == f"battery_hawk/device/{DID}/readings"]


def _live(sub: Subscriber) -> list[dict[str, object]]:
    return [d for d in _docs(sub) if d.get("source") != "history"]


def _history(sub: Subscriber) -> list[dict[str, object]]:
    return [d for d in _docs(sub) if d.get("source") == "history"]


def _ts(doc: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(doc["timestamp"]).replace("Z", "+00:00"))


def _move_last_reading_back(tmp_path: Path, by: timedelta) -> datetime:
    """What a stop of ``by`` leaves on the gateway: its last reading is that much older."""
    path = tmp_path / "state" / "history.json"
    data = json.loads(path.read_text())
    moved = datetime.fromisoformat(data[DID]["last_live"]) - by
    data[DID]["last_live"] = moved.isoformat()
    path.write_text(json.dumps(data))
    return moved


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def _history_requests(fake: FakeBlueZ) -> int:
    aes = ZeroIvCbc(BM6_KEY)
    return sum(aes.decrypt(w)[:3] == b"\xd1\x55\x05" for w in fake.writes(ADDR))


async def _run_until_live(daemon: Daemon, sub: Subscriber, count: int) -> None:
    await daemon.start()
    await sub.wait_for(lambda _: len(_live(sub)) >= count, timeout=60)


async def _stopped_20_minutes(memory: DeviceMemory, tmp_path: Path) -> datetime:
    memory.advance(20, DURING)  # the device keeps measuring: 10 records
    return _move_last_reading_back(tmp_path, 20 * MIN)


async def test_a_20_minute_stop_is_filled_once_from_the_device_memory(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    memory = add_history(fake_bluez, ADDR, "bm6", BEFORE, minutes=60)
    sub = Subscriber(mosquitto.port, "battery_hawk/device/#")
    await sub.start()
    http_port = free_port()
    daemon = Daemon(_config(tmp_path, mosquitto.port, http_port=http_port), fake_bluez,
                    tmp_path / "daemon.log")
    try:
        await _run_until_live(daemon, sub, 3)
        assert _history(sub) == []  # a first start has no earlier reading: no gap
        assert await daemon.stop() == 0
        gap_start = await _stopped_20_minutes(memory, tmp_path)
        memory.advance(0, AFTER)
        live_before = len(_live(sub))

        await daemon.start()
        await sub.wait_for(lambda _: len(_history(sub)) >= 9, timeout=60)
        first_after = _live(sub)[live_before]
        # more visits: nothing is filled twice
        await sub.wait_for(lambda _: len(_live(sub)) >= live_before + 5, timeout=60)
        metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/metrics")
        assert f'battery_hawk_history_readings_total{{device_id="{DID}"}} 9.0' in metrics
        page = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/")
        # the sparkline holds the gap's stored voltages next to the live ones
        assert "Voltage, last hour: 12.31 to 12.48 V" in page
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()
        await sub.stop()

    history = _history(sub)
    stamps = [_ts(d) for d in history]
    assert len(history) == 9  # the 20 minutes at 2-minute steps, less the live ends
    assert all(gap_start + MIN <= ts <= _ts(first_after) - MIN for ts in stamps)
    assert {b - a for a, b in itertools.pairwise(stamps)} == {2 * MIN}  # oldest first
    assert {(d["voltage"], d["soc"], d["temperature"]) for d in history} == {(12.31, 62.0, 9.0)}
    assert all("seq" not in d for d in history)
    seqs = [d["seq"] for d in _live(sub)]
    assert seqs == sorted(set(seqs))  # the live stream: every seq once, in order
    assert _history_requests(fake_bluez) == 1


async def test_a_shutdown_during_a_download_exits_in_time_and_the_next_start_fills(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    memory = add_history(fake_bluez, ADDR, "bm6", BEFORE, minutes=60)
    sub = Subscriber(mosquitto.port, "battery_hawk/device/#")
    await sub.start()
    # a long connect timeout: the download would hang that long on the cut page
    daemon = Daemon(_config(tmp_path, mosquitto.port, connect_timeout=120), fake_bluez,
                    tmp_path / "daemon.log")
    try:
        await _run_until_live(daemon, sub, 2)
        assert await daemon.stop() == 0
        await _stopped_20_minutes(memory, tmp_path)
        memory.cut_pages()  # the device goes quiet in the middle of its page

        await daemon.start()
        await wait_until(lambda: _history_requests(fake_bluez) >= 1, timeout=60)
        assert await daemon.stop(within=30) == 0  # not the 120 s the download may take
        assert _history(sub) == []
        pending = json.loads((tmp_path / "state" / "history.json").read_text())[DID]["gaps"]
        assert len(pending) == 1

        memory.cut_pages(False)
        await daemon.start()
        await sub.wait_for(lambda _: len(_history(sub)) >= 9, timeout=60)
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()
        await sub.stop()
    assert len(_history(sub)) in (9, 10)  # the second start came a few seconds later


async def test_a_download_cut_by_a_dropped_link_is_resumed_by_the_next_visit(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    memory = add_history(fake_bluez, ADDR, "bm6", BEFORE, minutes=60)
    sub = Subscriber(mosquitto.port, "battery_hawk/device/#")
    await sub.start()
    daemon = Daemon(_config(tmp_path, mosquitto.port, connect_timeout=30), fake_bluez,
                    tmp_path / "daemon.log")
    try:
        await _run_until_live(daemon, sub, 2)
        assert await daemon.stop() == 0
        await _stopped_20_minutes(memory, tmp_path)
        memory.cut_pages()

        await daemon.start()
        await wait_until(lambda: _history_requests(fake_bluez) >= 1, timeout=60)
        memory.cut_pages(False)
        fake_bluez.drop_link(ADDR)  # mid-page: the download fails, nothing is published
        await sub.wait_for(lambda _: len(_history(sub)) >= 9, timeout=60)
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()
        await sub.stop()
    assert len(_history(sub)) == 9
    assert _history_requests(fake_bluez) == 2  # the cut one, and the one that resumed
