"""Gateways of one site for tests and bench/site.py: `battery-hawk run` processes, each
with a fake BlueZ of its own (so each hears the same devices with its own RSSI) and a
TcpGate to the broker (so a test can cut one off)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Subscriber, TcpGate, publish_once

__all__ = ["Gateway", "gateway_config", "readings_by_device", "retained_docs", "streams"]


def gateway_config(tmp_path: Path, name: str, broker_port: int,
                   devices: list[dict[str, object]], lease: float | None) -> Path:
    """A gateway's config file; ``lease`` None leaves the site off (a lone gateway)."""
    directory = tmp_path / name
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "gateway_id": name,
        "bluetooth": {"adapter": "hci0", "connect_timeout": 5, "scan_interval": 1},
        "mqtt": {"broker": "127.0.0.1", "port": broker_port, "keepalive": 5,
                 "initial_retry_delay": 0.2, "max_retry_delay": 1.0, "max_retries": 0,
                 "health_check_interval": 1},
        "devices": devices,
        "http": {"enabled": False},
        "logging": {"level": "INFO", "format": "text"},
        "storage": {"path": str(directory / "state")},
        "site": {"enabled": lease is not None, "lease_seconds": lease or 30.0},
    }
    path = directory / "battery-hawk.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Gateway:
    """One gateway: its fake BlueZ, its gate to the broker and its daemon process."""

    def __init__(self, name: str, tmp_path: Path, broker_port: int) -> None:
        self.name = name
        self.tmp_path = tmp_path
        self.fake = FakeBlueZ()
        self.gate = TcpGate(broker_port)
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self, devices: list[dict[str, object]], lease: float | None,
                    add_devices: Callable[[FakeBlueZ], None]) -> None:
        await asyncio.to_thread(self.fake.start)
        await asyncio.to_thread(add_devices, self.fake)
        await self.gate.start()
        config = gateway_config(self.tmp_path, self.name, self.gate.port, devices, lease)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "battery_hawk", "run", "-c", str(config),
            env=self.fake.env(dict(os.environ)), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read_log(), name=f"log-{self.name}")

    async def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.log.append(line.decode(errors="replace").rstrip())

    def cut_off(self) -> None:
        """A pulled cable: the link to the broker freezes and no new one gets through."""
        self.gate.freeze()
        self.gate.shut()

    def kill(self) -> None:
        """SIGKILL: no clean stop, the broker publishes the Last Will."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            async with asyncio.timeout(5):
                await asyncio.gather(self._reader, return_exceptions=True)
        await self.gate.stop()
        await asyncio.to_thread(self.fake.stop)


def readings_by_device(sub: Subscriber, start: int = 0) -> dict[str, list[tuple[str, int]]]:
    """(gateway, seq) of every reading on ``.../readings`` from message ``start`` on."""
    found: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for topic, payload in sub.messages[start:]:
        if topic.endswith("/readings") and payload:
            doc = json.loads(payload)
            found[doc["device_id"]].append((doc.get("gateway", ""), doc["seq"]))
    return found


def streams(readings: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    """The seqs of one device's readings per gateway, in arrival order."""
    by_gateway: dict[str, list[int]] = defaultdict(list)
    for gateway, seq in readings:
        by_gateway[gateway].append(seq)
    return dict(by_gateway)


async def retained_docs(port: int, topic_filter: str) -> dict[str, dict[str, object]]:
    """The retained JSON documents under a filter, as a new subscriber is given them."""
    sub = Subscriber(port, topic_filter)
    await sub.start()
    try:  # a marker after the retained burst: everything before it was retained
        await publish_once(port, topic_filter.rstrip("#") + "zz-marker", b"end")
        await sub.wait_for(lambda m: any(t.endswith("zz-marker") for t, _ in m), timeout=10)
        return {t: json.loads(p) for t, p in sub.messages
                if p and not t.endswith("zz-marker")}
    finally:
        await sub.stop()
