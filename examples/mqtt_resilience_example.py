"""MQTTInterface riding out a broker outage, against the embedded amqtt broker.

Run: ``.venv/bin/python examples/mqtt_resilience_example.py`` (about 10 s, no setup).

It starts an embedded broker, publishes a reading every 0.2 s, stops the broker for a
few seconds (the readings queue up), starts it again (the queue drains, in order), and
prints the connection-state changes, the queue size during the outage and the stats.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from battery_hawk.mqtt import (
    BrokerSettings,
    ConnectionState,
    MQTTInterface,
    ReconnectionConfig,
)
from battery_hawk.simulator.broker import EmbeddedBroker, quiet_amqtt

STATUS = "battery_hawk/gateway/example/status"
STATE = "battery_hawk/device/aabbccddee01/state"


async def watch_state(iface: MQTTInterface) -> None:
    """Print every state change (the interface also logs each one once)."""
    last = None
    while True:
        state = iface.connection_state
        if state is not last:
            print(f"  state -> {state.value}")
            last = state
        await asyncio.sleep(0.02)


async def produce(iface: MQTTInterface, stop: asyncio.Event) -> int:
    """Publish a reading every 0.2 s, as a coordinator would; return how many."""
    seq = 0
    while not stop.is_set():
        await iface.publish(STATE, {
            "device_id": "aabbccddee01", "seq": seq, "voltage": round(12.6 + seq / 1000, 3),
            "soc": 87, "timestamp": dt.datetime.now(dt.UTC),  # -> ISO 8601
        }, retain=True)
        seq += 1
        await asyncio.sleep(0.2)
    return seq


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="  log: %(levelname)s %(message)s")
    quiet_amqtt()
    logging.getLogger("amqtt").setLevel(logging.ERROR)  # its shutdown chatter
    received: list[int] = []
    arrived = asyncio.Event()

    def on_state(topic: str, payload: bytes) -> None:
        received.append(json.loads(payload)["seq"])
        arrived.set()

    async with EmbeddedBroker() as broker:
        print(f"embedded amqtt broker on 127.0.0.1:{broker.port}")
        config = ReconnectionConfig(initial_retry_delay=0.5, max_retry_delay=2.0,
                                    health_check_interval=5.0, connection_timeout=5.0)
        iface = MQTTInterface(
            BrokerSettings("127.0.0.1", broker.port, client_id="battery-hawk-example",
                           keepalive=10),
            config, status_topic=STATUS,
        )
        watcher = asyncio.create_task(watch_state(iface), name="example-state-watcher")
        async with iface:
            # The interface's own subscription; it is restored after every reconnect.
            await iface.subscribe(STATE, on_state)
            await iface.wait_connected(10)
            stop = asyncio.Event()
            producer = asyncio.create_task(produce(iface, stop), name="example-producer")
            await asyncio.sleep(2)

            print("\n== stopping the broker: readings queue up ==")
            await broker.stop()
            for _ in range(8):
                await asyncio.sleep(0.5)
                print(f"  queued: {iface.stats.queue_size:3d}   state: "
                      f"{iface.connection_state.value}")

            print("\n== starting the broker again: the queue drains ==")
            await broker.start()
            await iface.wait_connected(15)
            await asyncio.sleep(2)
            stop.set()
            sent = await producer
            drained = await iface.flush(10)
            async with asyncio.timeout(5):
                while len(set(received)) < sent:
                    arrived.clear()
                    await arrived.wait()
            stats = iface.stats
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    first_seen = list(dict.fromkeys(received))  # arrival order, duplicates removed
    print(f"\npublished {sent} readings, queue drained: {drained}; the subscriber saw "
          f"{len(first_seen)} distinct ({len(received) - len(first_seen)} duplicates), "
          f"in order: {first_seen == list(range(sent))}")
    print("\nstats:")
    for key, value in stats.as_dict().items():
        print(f"  {key:<24} {value}")
    assert stats.connection_state is ConnectionState.CONNECTED


if __name__ == "__main__":
    asyncio.run(main())
