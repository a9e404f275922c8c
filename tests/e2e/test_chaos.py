"""Chaos: `battery-hawk run` over the fake BlueZ while mosquitto and the daemon itself die.

Every reading travels on `P/device/D/readings`; an independent subscriber checks that it
holds every seq of every device. The daemon reaches the broker through a TcpGate, so the
test decides when it may reconnect (after the subscriber is back), and freezes the link
before a broker is killed: what the broker acknowledged has then reached the subscriber
(a marker published after the freeze arrives last), so a loss can only be the daemon's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from battery_hawk.models import BatteryState, Reading
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber, TcpGate, free_port, publish_once

from .test_daemon_run import BM2, BM6, IDS, daemon_seqs

DEVICES = [
    {"address": BM6, "type": "bm6", "name": "Car", "poll_interval": 1},
    {"address": BM2, "type": "bm2", "name": "Van", "poll_interval": 1},
]
READINGS = "battery_hawk/device/+/readings"


def add_devices(fake: FakeBlueZ) -> None:
    fake.add_bm6(BM6, Reading(voltage=12.64, soc=81, temperature=-3.0,
                              state=BatteryState.NORMAL))
    fake.add_bm2(BM2, [12.71, 12.69, 12.70])


def write_config(tmp_path: Path, port: int, http_port: int, **storage: Any) -> Path:
    mqtt: dict[str, Any] = {"broker": "127.0.0.1", "port": port, "keepalive": 10,
                            "initial_retry_delay": 0.1, "max_retry_delay": 0.5,
                            "max_retries": 0, "health_check_interval": 5}
    queue = storage.pop("message_queue_size", None)
    if queue is not None:
        mqtt["message_queue_size"] = queue
    config = {
        "gateway_id": "chaos",
        "bluetooth": {"adapter": "hci0", "connect_timeout": 5, "scan_interval": 1},
        "mqtt": mqtt,
        "devices": DEVICES,
        "http": {"enabled": True, "listen": "127.0.0.1", "port": http_port},
        "logging": {"level": "INFO", "format": "text"},
        "storage": {"path": str(tmp_path / "state"), **storage},
    }
    path = tmp_path / "battery-hawk.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Daemon:
    """`python -m battery_hawk run` as a child process; stderr kept for failure messages."""

    def __init__(self, config: Path, fake: FakeBlueZ, http_port: int,
                 file_size_limit: int | None = None) -> None:
        self.config = config
        self.fake = fake
        self.http_port = http_port
        self.file_size_limit = file_size_limit
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = b""
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        limit = self.file_size_limit

        def limit_files() -> None:  # a full disk for this process: writes past it fail
            if limit is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "battery_hawk", "run", "-c", str(self.config),
            env=self.fake.env(dict(os.environ)), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, preexec_fn=limit_files)
        self._reader = asyncio.create_task(self._read_stderr(), name="test-daemon-stderr")

    async def seqs(self) -> dict[str, int]:
        """Newest seq per device from the daemon's HTTP API (0 before the first)."""
        try:
            return await daemon_seqs(self.http_port)
        except OSError:
            return {}

    async def wait_readings(self, more: int, timeout: float = 30) -> dict[str, int]:
        """Wait (bounded) until every device made ``more`` readings past now."""
        start = await self.seqs()
        async with asyncio.timeout(timeout):
            while True:
                now = await self.seqs()
                if now and all(now.get(d, 0) >= start.get(d, 0) + more for d in IDS_USED):
                    return now
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()
        await self._end_reader()

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._end_reader()
        return self.proc.returncode or 0

    async def _end_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._reader

    async def _read_stderr(self) -> None:
        """Drain stderr as it comes (a full pipe would stall the daemon)."""
        assert self.proc is not None and self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.stderr += chunk

    @property
    def log(self) -> str:
        return self.stderr.decode(errors="replace")


IDS_USED = [IDS[BM6], IDS[BM2]]


def readings(sub: Subscriber) -> dict[str, dict[int, set[str]]]:
    """device -> seq -> the timestamps seen with that seq (more than one: a reused seq)."""
    found: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for topic, payload in sub.messages:
        if topic.endswith("/readings") and payload:
            doc = json.loads(payload)
            found[topic.split("/")[2]][doc["seq"]].add(doc["timestamp"])
    return found


def holds_every_seq(sub: Subscriber, newest: dict[str, int], first: int = 1) -> bool:
    got = readings(sub)
    return all(set(range(first, newest[d] + 1)) <= set(got.get(d, {})) for d in IDS_USED)


async def settle_and_kill_broker(broker: Mosquitto, gate: TcpGate, sub: Subscriber) -> None:
    """Freeze the daemon's link, let the broker deliver what it took, kill it, cut the link."""
    gate.shut()
    gate.freeze()
    marker = f"m{broker.starts}".encode()
    await publish_once(broker.port, "test/marker", marker)
    await sub.wait_for(lambda m: ("test/marker", marker) in m, timeout=10)
    broker.kill()
    gate.cut()


async def start_broker(broker: Mosquitto, gate: TcpGate, sub: Subscriber) -> None:
    await broker.start_async()
    await sub.reconnect()
    gate.open()


async def test_broker_killed_ten_times_while_readings_flow_loses_no_reading(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    add_devices(fake_bluez)
    http_port = free_port()
    async with TcpGate(mosquitto.port) as gate, \
            Subscriber(mosquitto.port, "#") as sub:
        daemon = Daemon(write_config(tmp_path, gate.port, http_port), fake_bluez, http_port)
        await daemon.start()
        try:
            await sub.wait_for(lambda _: all(len(readings(sub).get(d, {})) >= 2
                                             for d in IDS_USED), timeout=60)
            loop = asyncio.get_running_loop()
            began = loop.time()
            for _ in range(10):
                await settle_and_kill_broker(mosquitto, gate, sub)
                await daemon.wait_readings(1)  # readings go on while the broker is away
                await start_broker(mosquitto, gate, sub)
            assert loop.time() - began < 60
            newest = await daemon.seqs()
            await sub.wait_for(lambda _: holds_every_seq(sub, newest), timeout=60)
        finally:
            code = await daemon.stop()
        assert code == 0, daemon.log[-3000:]
        assert all(len(stamps) == 1 for seqs in readings(sub).values()
                   for stamps in seqs.values()), "a seq came with two different readings"
        assert "Traceback" not in daemon.log


async def test_kill_9_during_an_outage_then_restart_delivers_every_spooled_reading(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    add_devices(fake_bluez)
    http_port = free_port()
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, READINGS) as sub:
        config = write_config(tmp_path, gate.port, http_port)
        first = Daemon(config, fake_bluez, http_port)
        await first.start()
        try:
            await sub.wait_for(lambda _: all(len(readings(sub).get(d, {})) >= 2
                                             for d in IDS_USED), timeout=60)
            gate.shut()
            gate.cut()  # the broker is away for the daemon
            await first.wait_readings(5)
        finally:
            await first.kill()
        spooled = spooled_readings(tmp_path / "state" / "spool.sqlite")
        for did in IDS_USED:
            assert len(spooled.get(did, {})) >= 5, first.log[-3000:]
        before_restart = {d: max([*readings(sub).get(d, {}), *spooled.get(d, {})])
                          for d in IDS_USED}

        second = Daemon(config, fake_bluez, http_port)
        gate.open()
        await second.start()
        try:
            await sub.wait_for(lambda _: all(
                set(spooled.get(d, {})) <= set(readings(sub).get(d, {})) for d in IDS_USED)
                and all(max(readings(sub).get(d, {0: None})) > before_restart[d]
                        for d in IDS_USED), timeout=60)
        finally:
            assert await second.stop() == 0, second.log[-3000:]
    got = readings(sub)
    for did in IDS_USED:
        for seq, stamp in spooled[did].items():
            assert got[did][seq] == {stamp}, f"{did} seq {seq} was reused for other data"
        assert all(len(stamps) == 1 for stamps in got[did].values())
    assert "spool" in second.log and "from an earlier run" in second.log


def spooled_readings(path: Path) -> dict[str, dict[int, str]]:
    """device -> seq -> timestamp of every reading waiting in a spool file."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT topic, payload FROM messages").fetchall()
    finally:
        db.close()
    found: dict[str, dict[int, str]] = defaultdict(dict)
    for topic, payload in rows:
        if topic.endswith("/readings"):
            doc = json.loads(payload)
            found[topic.split("/")[2]][doc["seq"]] = doc["timestamp"]
    return found


async def outage_of_three_queues(tmp_path: Path, fake: FakeBlueZ, broker: Mosquitto,
                                 *, spool: bool) -> tuple[Subscriber, dict[str, int], str]:
    add_devices(fake)
    http_port = free_port()
    queue = 6
    gate = TcpGate(broker.port)
    await gate.start()
    sub = Subscriber(broker.port, "#")
    await sub.start()
    daemon = Daemon(write_config(tmp_path, gate.port, http_port, spool=spool,
                                 message_queue_size=queue), fake, http_port)
    await daemon.start()
    try:
        await sub.wait_for(lambda _: all(len(readings(sub).get(d, {})) >= 2
                                         for d in IDS_USED), timeout=60)
        await settle_and_kill_broker(broker, gate, sub)
        # 3 x message_queue_size readings over the devices while the broker is away
        await daemon.wait_readings(3 * queue // len(IDS_USED) + 1)
        await start_broker(broker, gate, sub)
        newest = await daemon.wait_readings(2)  # made after the broker came back
        try:
            await sub.wait_for(lambda _: all(newest[d] in readings(sub).get(d, {})
                                             for d in IDS_USED), timeout=60)
        except TimeoutError:
            raise AssertionError(f"newest {newest} never arrived; daemon log:\n"
                                 f"{daemon.log[-4000:]}") from None
        metrics = await asyncio.to_thread(_get_text, f"http://127.0.0.1:{http_port}/metrics")
    finally:
        code = await daemon.stop()
        await sub.stop()
        await gate.stop()
    assert code == 0, daemon.log[-3000:]
    return sub, newest, metrics


def _get_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_an_outage_of_three_queue_sizes_loses_nothing_with_the_spool(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    sub, newest, metrics = await outage_of_three_queues(tmp_path, fake_bluez, mosquitto,
                                                        spool=True)
    assert holds_every_seq(sub, newest)
    assert metric(metrics, "battery_hawk_mqtt_messages_dropped_total") == 0


async def test_without_the_spool_exactly_the_oldest_go_and_the_stats_say_how_many(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    sub, newest, metrics = await outage_of_three_queues(tmp_path, fake_bluez, mosquitto,
                                                        spool=False)
    got = readings(sub)
    lost = 0
    for did in IDS_USED:
        missing = sorted(set(range(1, newest[did] + 1)) - set(got[did]))
        assert missing, f"{did}: an outage of three queues cannot fit in memory"
        # one gap: the oldest readings of the outage, everything after it delivered
        assert missing == list(range(missing[0], missing[-1] + 1))
        assert set(range(missing[-1] + 1, newest[did] + 1)) <= set(got[did])
        lost += len(missing)
    dropped = metric(metrics, "battery_hawk_mqtt_dropped_overflow_total")
    published = metric(metrics, "battery_hawk_mqtt_messages_published_total")
    assert dropped >= lost > 0  # the dropped messages include every missing reading ...
    delivered = sum(1 for t, _ in sub.messages  # ... and what the daemon counts as
                    if t.startswith(("battery_hawk/", "homeassistant/"))  # published
                    and not t.endswith("/status"))  # (status goes out beside the queue)
    assert delivered >= published  # arrived (later messages may have followed)


async def test_a_full_disk_mid_run_falls_back_to_memory_and_the_daemon_goes_on(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    add_devices(fake_bluez)
    http_port = free_port()
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, READINGS) as sub:
        # files of this daemon cannot grow past 160 KiB: the spool fills it in the outage
        daemon = Daemon(write_config(tmp_path, gate.port, http_port), fake_bluez, http_port,
                        file_size_limit=160 * 1024)
        await daemon.start()
        try:
            await sub.wait_for(lambda _: all(len(readings(sub).get(d, {})) >= 1
                                             for d in IDS_USED), timeout=60)
            gate.shut()
            gate.cut()
            async with asyncio.timeout(90):
                while "unusable" not in daemon.log:
                    await daemon.wait_readings(2)
            gate.open()
            newest = await daemon.wait_readings(2)
            await sub.wait_for(lambda _: all(newest[d] in readings(sub).get(d, {})
                                             for d in IDS_USED), timeout=60)
        finally:
            code = await daemon.stop()
    assert code == 0, daemon.log[-3000:]
    assert daemon.log.count("unusable") == 1
    # it failed mid-run (the spool opened, readings went out first), not at start
    assert daemon.log.index("unusable") > daemon.log.index("MQTT connected"), daemon.log[-3000:]
    assert "Traceback" not in daemon.log


async def test_a_corrupt_spool_at_start_is_moved_aside_and_readings_flow(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    add_devices(fake_bluez)
    http_port = free_port()
    state = tmp_path / "state"
    state.mkdir()
    (state / "spool.sqlite").write_bytes(b"garbage, not SQLite " * 512)
    async with Subscriber(mosquitto.port, READINGS) as sub:
        daemon = Daemon(write_config(tmp_path, mosquitto.port, http_port), fake_bluez,
                        http_port)
        await daemon.start()
        try:
            await sub.wait_for(lambda _: all(len(readings(sub).get(d, {})) >= 2
                                             for d in IDS_USED), timeout=60)
        finally:
            code = await daemon.stop()
    assert code == 0, daemon.log[-3000:]
    assert daemon.log.count("was corrupt: moved aside") == 1
    assert [p.name for p in state.glob("spool.sqlite.corrupt-*")]


async def retained_only(port: int, topic: str) -> list[str]:
    """What `mosquitto_sub --retained-only` prints within a second: the retained messages."""
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-v",
        "--retained-only", "-W", "1", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    return out.decode().splitlines()


async def test_retained_state_is_back_after_a_broker_restart_and_births_are_debounced(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    add_devices(fake_bluez)
    http_port = free_port()
    async with Subscriber(mosquitto.port, "#") as sub:
        daemon = Daemon(write_config(tmp_path, mosquitto.port, http_port), fake_bluez,
                        http_port)
        await daemon.start()
        try:
            await sub.wait_for(lambda _: all(len(readings(sub).get(d, {})) >= 2
                                             for d in IDS_USED), timeout=60)
            # 1. a broker without persistence forgets every retained message
            mosquitto.kill()
            await mosquitto.start_async()
            loop = asyncio.get_running_loop()
            restarted = loop.time()
            wanted = {f"battery_hawk/device/{d}/availability online" for d in IDS_USED}
            async with asyncio.timeout(10):
                while not wanted <= set(await retained_only(
                        mosquitto.port, "battery_hawk/device/+/availability")):
                    pass  # each look waits up to a second for retained messages
            assert loop.time() - restarted < 10
            back = await retained_only(mosquitto.port, "#")
            assert "battery_hawk/gateway/chaos/status online" in back
            assert any(line.startswith("homeassistant/sensor/") for line in back)
            assert any(line.startswith("homeassistant/binary_sensor/") for line in back)

            # 2. 200 births: readings go on, none dropped, discovery re-sent at most twice
            await sub.stop()
            sub.messages.clear()  # from here on the subscriber misses nothing
            await sub.start()
            await sub.wait_for(lambda _: all(len(readings(sub).get(d, {})) >= 1
                                             for d in IDS_USED), timeout=30)
            first_seen = {d: min(readings(sub)[d]) for d in IDS_USED}
            config_topic = next(line.split()[0] for line in back
                                if line.startswith("homeassistant/sensor/"))
            before = [t for t, _ in sub.messages].count(config_topic)
            for _ in range(200):
                await publish_once(mosquitto.port, "homeassistant/status", "online")
            newest = await daemon.wait_readings(3)
            await sub.wait_for(lambda _: all(
                set(range(first_seen[d], newest[d] + 1)) <= set(readings(sub)[d])
                for d in IDS_USED), timeout=30)
            metrics = await asyncio.to_thread(_get_text,
                                              f"http://127.0.0.1:{http_port}/metrics")
        finally:
            code = await daemon.stop()
    assert code == 0, daemon.log[-3000:]
    resent = [t for t, _ in sub.messages].count(config_topic) - before
    assert resent <= 2
    assert daemon.log.count("Home Assistant is online") <= 2
    assert metric(metrics, "battery_hawk_mqtt_messages_dropped_total") == 0
