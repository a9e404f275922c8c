"""Benchmark: how fast MQTTInterface drains its queue, and how fast it reconnects.

1. Drain: 20,000 QoS 1 messages are published while mosquitto is down; mosquitto is
   started and the time from the connection to the empty queue is measured. In the
   same run raw aiomqtt publishes the same messages with 100 publishes in flight (100
   workers on one client). Both are repeated (alternating) and the medians compared;
   target drain_ratio >= 0.8.
2. Reconnect: with initial_retry_delay 1 s, mosquitto is SIGKILLed and restarted 5
   times; each time the interval from the restart (process launch) to the first
   acknowledged publish is measured; target median <= 1.5 s.

``--spool`` runs the interface with the durable spool on (battery_hawk/mqtt/spool.py, in a
temporary directory), as the daemon does by default: every message published while the
broker is down is then on disk before ``publish()`` returns, and deleted once acknowledged.

Run: ``.venv/bin/python bench/mqtt_drain.py [--messages N] [--rounds R] [--spool]``. The last line
printed is one JSON object, like every benchmark's (README, Benchmarks).
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

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from battery_hawk.mqtt import (
    BrokerSettings,
    ConnectionState,
    MQTTInterface,
    ReconnectionConfig,
)
from battery_hawk.mqtt.spool import Spool
from tests.support.brokers import Mosquitto

TOPIC = "bench/device/aabbccddee01/state"
IN_FLIGHT = 100


def _payloads(count: int) -> list[bytes]:
    return [
        json.dumps({"device_id": "aabbccddee01", "seq": i, "voltage": 12.84, "soc": 87,
                    "temperature": 21.0, "current": None, "state": "normal",
                    "timestamp": "2026-11-22T19:00:00.123Z"}).encode()
        for i in range(count)
    ]


async def _raw_rate(port: int, payloads: list[bytes]) -> float:
    """Messages/s for raw aiomqtt with IN_FLIGHT QoS 1 publishes awaiting their ack."""
    quiet = logging.getLogger("bench.paho")
    quiet.setLevel(logging.CRITICAL)
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=IN_FLIGHT,
                              logger=quiet, timeout=30) as client:
        client.pending_calls_threshold = IN_FLIGHT + 16
        it = iter(payloads)

        async def worker() -> None:
            for payload in it:
                await client.publish(TOPIC, payload, qos=1)

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(IN_FLIGHT):
                tg.create_task(worker())
        return len(payloads) / (time.perf_counter() - start)


async def _drain_rate(broker: Mosquitto, payloads: list[bytes], spool: bool = False) -> float:
    """Messages/s for MQTTInterface draining a queue filled while the broker was down."""
    if spool:
        with tempfile.TemporaryDirectory(prefix="bh-bench-drain-") as tmp:
            return await _drain(broker, payloads, Spool(tmp, 1 << 30))
    return await _drain(broker, payloads, None)


async def _drain(broker: Mosquitto, payloads: list[bytes], spool: Spool | None) -> float:
    broker.kill()
    config = ReconnectionConfig(initial_retry_delay=0.05, max_retry_delay=0.1,
                                message_queue_size=len(payloads) + 10,
                                max_in_flight=IN_FLIGHT)
    iface = MQTTInterface(BrokerSettings("127.0.0.1", broker.port, client_id="bench-drain"),
                          config, spool=spool)
    async with iface:
        for payload in payloads:
            await iface.publish(TOPIC, payload, qos=1)
        assert iface.stats.queue_size == len(payloads)
        await broker.start_async()
        if not await iface.wait_connected(30):
            raise RuntimeError("the interface did not connect")
        start = time.perf_counter()
        if not await iface.flush(120):
            raise RuntimeError("the queue did not drain")
        elapsed = time.perf_counter() - start
        stats = iface.stats
    if stats.messages_published != len(payloads) or stats.messages_dropped:
        raise RuntimeError(f"drain lost messages: {stats}")
    return len(payloads) / elapsed


async def _reconnect_times(restarts: int, spool: bool = False) -> list[float]:
    """Seconds from each broker restart to the first acknowledged publish after it."""
    broker = Mosquitto()
    broker.start()
    times: list[float] = []
    config = ReconnectionConfig(initial_retry_delay=1.0)
    tmp = tempfile.TemporaryDirectory(prefix="bh-bench-reconnect-")
    iface = MQTTInterface(BrokerSettings("127.0.0.1", broker.port, client_id="bench-reconnect"),
                          config, status_topic="bench/gateway/status",
                          spool=Spool(tmp.name, 1 << 30) if spool else None)
    try:
        async with iface:
            if not await iface.wait_connected(10):
                raise RuntimeError("the interface did not connect")
            for i in range(restarts):
                broker.kill()
                async with asyncio.timeout(30):
                    while iface.connection_state is ConnectionState.CONNECTED:  # noqa: ASYNC110
                        await asyncio.sleep(0.005)
                await iface.publish("bench/reconnect", str(i), qos=1)
                start = time.perf_counter()
                broker.launch()
                if not await iface.flush(30):  # returns once the broker acknowledged it
                    raise RuntimeError("no acknowledgement after the restart")
                times.append(time.perf_counter() - start)
    finally:
        broker.close()
        tmp.cleanup()
    return times


async def main() -> None:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--spool", action="store_true", help="the interface with its spool on")
    args = parser.parse_args()
    payloads = _payloads(args.messages)

    drain: list[float] = []
    raw: list[float] = []
    with Mosquitto() as broker:
        for _ in range(args.rounds):
            raw.append(await _raw_rate(broker.port, payloads))
            drain.append(await _drain_rate(broker, payloads, args.spool))
    reconnect = await _reconnect_times(args.restarts, args.spool)

    drain_rate = statistics.median(drain)
    raw_rate = statistics.median(raw)
    ratio = drain_rate / raw_rate
    p50 = statistics.median(reconnect)
    print(f"{'measure':<40} {'value':>12}  target")
    print(f"{'messages per run (QoS 1)':<40} {args.messages:>12}")
    print(f"{'raw aiomqtt, 100 in flight (msg/s)':<40} {raw_rate:>12.0f}  "
          f"runs: {', '.join(f'{r:.0f}' for r in raw)}")
    what = "MQTTInterface drain, spool (msg/s)" if args.spool else "MQTTInterface drain (msg/s)"
    print(f"{what:<40} {drain_rate:>12.0f}  "
          f"runs: {', '.join(f'{r:.0f}' for r in drain)}")
    print(f"{'drain ratio (drain / raw)':<40} {ratio:>12.2f}  >= 0.8")
    print(f"{'restart -> first ack, median (s)':<40} {p50:>12.2f}  <= 1.5  "
          f"runs: {', '.join(f'{t:.2f}' for t in reconnect)}")
    print(json.dumps({"drain_rate": round(drain_rate), "raw_rate": round(raw_rate),
                      "drain_ratio": round(ratio, 3), "reconnect_p50_s": round(p50, 3)}))


if __name__ == "__main__":
    asyncio.run(main())
