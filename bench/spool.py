"""Benchmark: the durable spool. Spill readings to disk with the broker down, then replay.

1. Spill: mosquitto is down; 50,000 QoS 1 readings (5 devices, ~300-byte JSON on their
   ``readings`` topics) are published to an MQTTInterface with the spool on (default
   ``message_queue_size`` 1000: the rest waits on disk only). The publish rate is the
   spill rate: each ``publish()`` returns once its message is in the spool.
2. Replay: mosquitto is started; the time from the connection to the empty spool (every
   row acknowledged and deleted) gives the replay rate.
3. Memory drain: the same messages with the spool off and a memory queue big enough to
   hold them all; the time from the connection to the empty queue.
Replay and memory drain alternate for ``--rounds``; medians are compared (target:
replay >= 0.8 x memory). ``spool_mib`` is the spool's size on disk (file + WAL) per
1,000 readings after the spill.

Run: ``.venv/bin/python bench/spool.py [--messages N] [--rounds R]``. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from battery_hawk.mqtt import BrokerSettings, MQTTInterface, ReconnectionConfig
from battery_hawk.mqtt.spool import SPOOL_FILE, Spool
from tests.support.brokers import Mosquitto

DEVICES = [f"aabbccddee{i:02x}" for i in range(5)]


def _messages(count: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        did = DEVICES[i % len(DEVICES)]
        doc = {"device_id": did, "address": "AA:BB:CC:DD:EE:01", "name": "Car battery",
               "model": "BM6", "timestamp": "2026-11-22T19:00:00.123Z",
               "seq": i // len(DEVICES) + 1, "voltage": 12.84, "soc": 87,
               "temperature": 21.0, "current": None, "power": None, "consumed_ah": None,
               "remaining_mins": None, "state": "normal", "rssi": -67}
        out.append((f"bench/device/{did}/readings", json.dumps(doc).encode()))
    return out


def _config(queue: int) -> ReconnectionConfig:
    return ReconnectionConfig(max_retries=0, initial_retry_delay=0.05, max_retry_delay=0.1,
                              message_queue_size=queue)


def _disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob(f"{SPOOL_FILE}*"))


async def _spool_round(broker: Mosquitto, messages: list[tuple[str, bytes]]
                       ) -> tuple[float, float, int]:
    """(spill rate, replay rate, bytes on disk after the spill)."""
    broker.kill()
    with tempfile.TemporaryDirectory(prefix="bh-bench-spool-") as tmp:
        directory = Path(tmp)
        iface = MQTTInterface(BrokerSettings("127.0.0.1", broker.port, client_id="bench-spool"),
                              _config(1000), spool=Spool(directory, 1 << 30))
        async with iface:
            start = time.perf_counter()
            for topic, payload in messages:
                await iface.publish(topic, payload, qos=1)
            spill = len(messages) / (time.perf_counter() - start)
            stats = iface.stats
            if stats.queue_size != len(messages) or not stats.spool_enabled:
                raise RuntimeError(f"not everything was spooled: {stats}")
            size = _disk_bytes(directory)
            await broker.start_async()
            if not await iface.wait_connected(30):
                raise RuntimeError("the interface did not connect")
            start = time.perf_counter()
            if not await iface.flush(300):
                raise RuntimeError("the spool did not drain")
            replay = len(messages) / (time.perf_counter() - start)
            stats = iface.stats
        if stats.messages_published != len(messages) or stats.messages_dropped:
            raise RuntimeError(f"replay lost messages: {stats}")
    return spill, replay, size


async def _memory_round(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> float:
    broker.kill()
    iface = MQTTInterface(BrokerSettings("127.0.0.1", broker.port, client_id="bench-memory"),
                          _config(len(messages) + 10))
    async with iface:
        for topic, payload in messages:
            await iface.publish(topic, payload, qos=1)
        await broker.start_async()
        if not await iface.wait_connected(30):
            raise RuntimeError("the interface did not connect")
        start = time.perf_counter()
        if not await iface.flush(300):
            raise RuntimeError("the queue did not drain")
        rate = len(messages) / (time.perf_counter() - start)
        stats = iface.stats
    if stats.messages_published != len(messages) or stats.messages_dropped:
        raise RuntimeError(f"memory drain lost messages: {stats}")
    return rate


async def main() -> None:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    messages = _messages(args.messages)
    spills: list[float] = []
    replays: list[float] = []
    memory: list[float] = []
    sizes: list[int] = []
    with Mosquitto() as broker:
        for _ in range(args.rounds):
            spill, replay, size = await _spool_round(broker, messages)
            spills.append(spill)
            replays.append(replay)
            sizes.append(size)
            memory.append(await _memory_round(broker, messages))
    spill_rate = statistics.median(spills)
    replay_rate = statistics.median(replays)
    memory_rate = statistics.median(memory)
    ratio = replay_rate / memory_rate
    mib_per_1000 = statistics.median(sizes) / (1 << 20) / (args.messages / 1000)

    def runs(values: list[float]) -> str:
        return "runs: " + ", ".join(f"{v:.0f}" for v in values)

    print(f"{'measure':<44} {'value':>10}  target")
    print(f"{'readings per run (QoS 1, ~300 B)':<44} {args.messages:>10}")
    print(f"{'spill to disk, broker down (msg/s)':<44} {spill_rate:>10.0f}  {runs(spills)}")
    print(f"{'replay from the spool (msg/s)':<44} {replay_rate:>10.0f}  {runs(replays)}")
    print(f"{'memory-only drain (msg/s)':<44} {memory_rate:>10.0f}  {runs(memory)}")
    print(f"{'replay ratio (replay / memory)':<44} {ratio:>10.2f}  >= 0.8")
    print(f"{'spool on disk per 1,000 readings (MiB)':<44} {mib_per_1000:>10.3f}")
    print(json.dumps({"spill_rate": round(spill_rate), "replay_rate": round(replay_rate),
                      "memory_drain_rate": round(memory_rate),
                      "replay_ratio": round(ratio, 3), "spool_mib": round(mib_per_1000, 4)}))


if __name__ == "__main__":
    asyncio.run(main())
