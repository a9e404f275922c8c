"""The same basic delivery against the embedded amqtt broker (what `demo` uses)."""

from __future__ import annotations

import json

from battery_hawk.mqtt import ConnectionState, MQTTInterface
from tests.support.brokers import AmqttBroker, Subscriber, TcpGate, wait_until

from .conftest import FAST, settings_for


async def test_messages_published_while_disconnected_reach_amqtt_in_order(
    amqtt_broker: AmqttBroker,
) -> None:
    async with TcpGate(amqtt_broker.port) as gate, \
            Subscriber(amqtt_broker.port, "bh/amqtt/#") as sub:
        gate.shut()
        iface = MQTTInterface(settings_for(gate.port), FAST, status_topic="bh/amqtt/status")
        async with iface:
            for i in range(30):
                await iface.publish("bh/amqtt/seq", {"i": i})
            assert iface.stats.queue_size == 30
            gate.open()
            assert await iface.flush(10)
            await sub.wait_for(lambda msgs: len([m for m in msgs if m[0] == "bh/amqtt/seq"]) >= 30)
    seq = [json.loads(p)["i"] for t, p in sub.messages if t == "bh/amqtt/seq"]
    assert seq == list(range(30))
    assert ("bh/amqtt/status", b"online") in sub.messages


async def test_interface_recovers_when_amqtt_restarts(amqtt_broker: AmqttBroker) -> None:
    iface = MQTTInterface(settings_for(amqtt_broker.port), FAST)
    async with iface:
        assert await iface.wait_connected(10)
        await amqtt_broker.stop()
        await wait_until(lambda: iface.connection_state is not ConnectionState.CONNECTED)
        await iface.publish("bh/amqtt/after", "queued during the outage")
        assert iface.stats.queue_size == 1
        await amqtt_broker.start()
        assert await iface.wait_connected(10)
        assert await iface.flush(10)
        assert iface.stats.total_reconnections == 1
