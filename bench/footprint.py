"""Footprint of the daemon: `battery-hawk demo --devices N --no-live` at one reading per
device per second, for N = 10 and N = 200.

Measures the daemon process's RSS and CPU (% of one core), the readings per second that
reach an independent MQTT subscriber, and the latency from each reading's timestamp to
its arrival there, and the daemon's CPU time per reading. Insight (trend, SoC estimate, link
quality, alerts) is on for every device, as it is by default. Targets: N=10 at most 40 MiB
RSS and 0.5 % of a core; N=200 sustained with p99 at most 50 ms and at most 0.25 ms of CPU
per reading. The demo's broker runs in a child process (as a real broker would run beside the
daemon); its figures are reported separately. For scale it also reports the RSS of a bare
Python interpreter measured in the same run, and the floor under the CPU figure: a bare
aiomqtt client (no daemon around it) publishing the same two QoS 1 messages per reading
(retained state and readings, a state-sized JSON document built per reading) to a
mosquitto at the same rate, measured the same way.

    .venv/bin/python bench/footprint.py [--quick]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.brokers import Mosquitto, Subscriber, free_port  # noqa: E402


class StampingSubscriber(Subscriber):
    """Records the wall-clock arrival time of every message next to it."""

    def __init__(self, port: int, topic_filter: str) -> None:
        super().__init__(port, topic_filter, qos=0)
        self.arrived: list[float] = []
        self.recording = False

    async def _read(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in client.messages:
                if self.recording and isinstance(message.payload, bytes):
                    self.arrived.append(time.time())
                    self.messages.append((message.topic.value, message.payload))


@dataclass
class Result:
    devices: int
    rss_mib: float
    cpu_pct: float
    broker_rss_mib: float
    broker_cpu_pct: float
    rate: float
    expected_rate: float
    p50_ms: float
    p99_ms: float
    readings: int
    lost: int

    @property
    def cpu_ms_per_reading(self) -> float:
        """Daemon CPU time per reading that reached the subscriber, in ms."""
        return self.cpu_pct * 10.0 / self.rate if self.rate else 0.0


def _latency_ms(payload: bytes, arrived: float) -> float:
    doc = json.loads(payload)
    stamp = datetime.fromisoformat(doc["timestamp"].replace("Z", "+00:00")).timestamp()
    return (arrived - stamp) * 1000.0


async def measure(devices: int, warmup: float, window: float) -> Result:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "demo", "--devices", str(devices),
        "--interval", "1", "--port", str(port), "--no-live", "--log-level", "ERROR",
        stdout=subprocess.DEVNULL, cwd=ROOT,
    )
    sub = StampingSubscriber(port, "battery_hawk/device/+/state")
    try:
        await sub.start(timeout=30)
        await asyncio.sleep(warmup)
        process = psutil.Process(proc.pid)
        broker = process.children()[0]
        cpu_before = process.cpu_times()
        broker_before = broker.cpu_times()
        wall_before = time.monotonic()
        sub.recording = True
        await asyncio.sleep(window)
        sub.recording = False
        wall = time.monotonic() - wall_before
        cpu_after = process.cpu_times()
        broker_after = broker.cpu_times()
        rss = process.memory_info().rss / 2**20
        broker_rss = broker.memory_info().rss / 2**20
        arrivals = [(t, p) for t, (_, p) in zip(sub.arrived, sub.messages, strict=True)]
    finally:
        await sub.stop()
        proc.terminate()
        try:
            async with asyncio.timeout(30):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    cpu = _busy(cpu_before, cpu_after) / wall * 100
    broker_cpu = _busy(broker_before, broker_after) / wall * 100
    latencies = sorted(_latency_ms(p, t) for t, p in arrivals)
    seqs: dict[str, set[int]] = {}
    for _, payload in arrivals:
        doc = json.loads(payload)
        seqs.setdefault(doc["device_id"], set()).add(doc["seq"])
    lost = sum(max(s) - min(s) + 1 - len(s) for s in seqs.values())
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return Result(
        devices=devices, rss_mib=rss, cpu_pct=cpu, broker_rss_mib=broker_rss,
        broker_cpu_pct=broker_cpu, rate=len(arrivals) / wall,
        expected_rate=float(devices), p50_ms=statistics.median(latencies) if latencies else 0.0,
        p99_ms=p99, readings=len(arrivals), lost=lost,
    )


RAW_PUBLISHER = """
import asyncio, json, sys, time
import aiomqtt

async def main(port: int, devices: int) -> None:
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=100) as client:
        due, seq = time.monotonic(), 0
        while True:
            for device in range(devices):
                seq += 1
                doc = json.dumps({"device_id": f"dev{device:03d}", "seq": seq,
                                  "timestamp": "2026-11-30T12:00:00.000000Z",
                                  "voltage": 12.84, "soc": 87, "temperature": 21.0,
                                  "current": None, "state": "normal", "rssi": -70,
                                  "trend": "idle", "slope_v_per_h": 0.01,
                                  "link_quality": "EXCELLENT", "soc_estimated": False,
                                  "chemistry": "lead_acid", "nominal_voltage": 12}).encode()
                await client.publish(f"raw/device/dev{device:03d}/state", doc, qos=1,
                                     retain=True)
                await client.publish(f"raw/device/dev{device:03d}/readings", doc, qos=1)
                due += 1.0 / devices
                await asyncio.sleep(max(0.0, due - time.monotonic()))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


async def measure_raw(devices: int, warmup: float, window: float) -> float:
    """CPU ms per reading of a bare aiomqtt client sending two QoS 1 messages a reading."""
    broker = Mosquitto()
    broker.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RAW_PUBLISHER, str(broker.port), str(devices), cwd=ROOT)
    try:
        await asyncio.sleep(warmup)
        process = psutil.Process(proc.pid)
        before, wall_before = process.cpu_times(), time.monotonic()
        await asyncio.sleep(window)
        busy = _busy(before, process.cpu_times())
        wall = time.monotonic() - wall_before
    finally:
        proc.kill()
        await proc.wait()
        broker.close()
    return busy * 1000.0 / (devices * wall)


def _busy(before: Any, after: Any) -> float:
    return float(after.user + after.system - before.user - before.system)


def bare_python_rss_mib() -> float:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        time.sleep(0.5)
        return psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.communicate(b"")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows (smoke run)")
    args = parser.parse_args()
    warmup, window = (5.0, 10.0) if args.quick else (10.0, 30.0)
    baseline = bare_python_rss_mib()
    results = [asyncio.run(measure(n, warmup, window)) for n in (10, 200)]
    raw_ms = asyncio.run(measure_raw(200, warmup, window))
    print(f"battery-hawk demo footprint ({window:.0f} s windows after {warmup:.0f} s warm-up; "
          f"{os.cpu_count()} cores)")
    print(f"{'devices':>8} {'RSS MiB':>8} {'CPU %':>7} {'readings/s':>11} {'expected':>9} "
          f"{'CPU ms/reading':>15} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5} {'broker MiB':>11} "
          f"{'broker CPU %':>13}")
    for r in results:
        print(f"{r.devices:>8} {r.rss_mib:>8.1f} {r.cpu_pct:>7.2f} {r.rate:>11.1f} "
              f"{r.expected_rate:>9.0f} {r.cpu_ms_per_reading:>15.3f} {r.p50_ms:>8.1f} "
              f"{r.p99_ms:>8.1f} {r.lost:>5} {r.broker_rss_mib:>11.1f} "
              f"{r.broker_cpu_pct:>13.1f}")
    print(f"bare Python interpreter RSS: {baseline:.1f} MiB")
    print(f"bare aiomqtt client, 2 QoS 1 publishes per reading at 200 readings/s: "
          f"{raw_ms:.3f} ms CPU per reading (the floor under the daemon's figure)")
    n10, n200 = results
    print("lost = seq numbers missing between the first and last reading seen of a device")
    print("CPU ms/reading = daemon CPU time / readings that reached the subscriber")
    print("targets: N=10 RSS <= 40 MiB and CPU <= 0.5 %; N=200 sustained, p99 <= 50 ms and "
          "<= 0.25 ms CPU per reading")
    print(json.dumps({
        "n10_rss_mib": round(n10.rss_mib, 1),
        "n10_cpu_pct": round(n10.cpu_pct, 2),
        "n200_rate": round(n200.rate, 1),
        "n200_p50_ms": round(n200.p50_ms, 1),
        "n200_p99_ms": round(n200.p99_ms, 1),
        "n200_lost": n200.lost,
        "n200_cpu_pct": round(n200.cpu_pct, 1),
        "n200_cpu_ms_per_reading": round(n200.cpu_ms_per_reading, 3),
        "n200_broker_cpu_pct": round(n200.broker_cpu_pct, 1),
        "python_baseline_rss_mib": round(baseline, 1),
        "raw_aiomqtt_cpu_ms_per_reading": round(raw_ms, 3),
    }))


if __name__ == "__main__":
    main()
