"""Delivery through a real mosquitto: order, overflow, rejection, subscriptions, shutdown."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import psutil
import pytest

from battery_hawk.errors import PayloadError
from battery_hawk.mqtt import ConnectionState, MQTTInterface, QueuedMessage, ReconnectionConfig
from tests.support.brokers import Mosquitto, Subscriber, TcpGate, publish_once, wait_until

from .conftest import FAST, settings_for


async def test_messages_published_while_disconnected_are_delivered_in_order_after_connect(
    mosquitto: Mosquitto,
) -> None:
    # The gate keeps the interface out until the subscriber is listening, so every
    # message has someone to be delivered to.
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, "bh/test/#") as sub:
        gate.shut()
        iface = MQTTInterface(settings_for(gate.port), FAST)
        async with iface:
            for i in range(50):
                await iface.publish("bh/test/seq", {"i": i})
            assert iface.connection_state is ConnectionState.CONNECTING
            assert iface.stats.queue_size == 50
            assert iface.stats.messages_published == 0
            gate.open()
            assert await iface.flush(10)
            await sub.wait_count(50)
            stats = iface.stats
        assert [json.loads(p)["i"] for p in sub.payloads] == list(range(50))
        assert stats.messages_published == 50
        assert stats.messages_queued == 50
        assert stats.total_connections == 1
        assert stats.consecutive_failures == 0


async def test_queue_overflow_drops_exactly_the_oldest_and_stats_say_so(
    mosquitto: Mosquitto,
) -> None:
    dead: list[tuple[QueuedMessage, str]] = []
    config = ReconnectionConfig(max_retries=0, initial_retry_delay=0.05, max_retry_delay=0.2,
                                connection_timeout=2, operation_timeout=2,
                                message_queue_size=5)
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, "bh/over") as sub:
        gate.shut()
        iface = MQTTInterface(settings_for(gate.port), config,
                              on_dead_letter=lambda m, why: dead.append((m, why)))
        async with iface:
            for i in range(8):
                await iface.publish("bh/over", str(i))
            stats = iface.stats
            assert (stats.messages_dropped, stats.dropped_overflow, stats.queue_size) == (3, 3, 5)
            assert [m.payload for m in iface.pending_messages()] == [b"3", b"4", b"5", b"6", b"7"]
            assert [(m.payload, why) for m, why in dead] == [
                (b"0", "overflow"), (b"1", "overflow"), (b"2", "overflow")]
            gate.open()
            assert await iface.flush(10)
            await sub.wait_count(5)
        assert sub.payloads == [b"3", b"4", b"5", b"6", b"7"]


async def test_unserialisable_payload_is_rejected_at_once_and_counted() -> None:
    iface = MQTTInterface(settings_for(1), FAST)  # never started: no broker needed
    with pytest.raises(PayloadError):
        await iface.publish("bh/x", {"bad": object()})
    with pytest.raises(PayloadError):
        await iface.publish("bh/+/wildcard", "x")
    await iface.publish("bh/x", {"at": dt.datetime(2026, 11, 22, 19, 0, tzinfo=dt.UTC)})
    stats = iface.stats
    assert (stats.messages_rejected, stats.messages_queued, stats.queue_size) == (2, 1, 1)
    assert iface.pending_messages()[0].payload == b'{"at":"2026-11-22T19:00:00+00:00"}'


async def test_clean_disconnect_publishes_offline_and_leaves_no_task_or_socket(
    mosquitto: Mosquitto,
) -> None:
    before = asyncio.all_tasks()
    sub = Subscriber(mosquitto.port, "bh/gw/status")
    await sub.start()
    iface = MQTTInterface(settings_for(mosquitto.port), FAST, status_topic="bh/gw/status")
    assert not iface.alive
    async with iface:
        assert await iface.wait_connected(10)
        assert iface.alive
        names = {t.get_name() for t in asyncio.all_tasks() - before}
        assert {"battery-hawk-mqtt-connection", "battery-hawk-mqtt-queue-processor",
                "battery-hawk-mqtt-health-check"} <= names
        await iface.publish("bh/data", "x")
        assert await iface.flush(10)
    assert iface.connection_state is ConnectionState.DISCONNECTED
    assert not iface.alive
    await sub.wait_for(lambda msgs: ("bh/gw/status", b"offline") in msgs, 10)
    await sub.stop()
    assert sub.payloads == [b"online", b"offline"]
    assert asyncio.all_tasks() - before == set()
    assert iface.stats.total_disconnections == 1
    ours = [c for c in psutil.Process().net_connections("tcp")
            if c.raddr and c.raddr.port == mosquitto.port and c.status == "ESTABLISHED"]
    assert ours == []


async def test_subscriptions_are_restored_after_every_reconnect(mosquitto: Mosquitto) -> None:
    heard: list[bytes] = []

    async def on_birth(topic: str, payload: bytes) -> None:
        heard.append(payload)

    iface = MQTTInterface(settings_for(mosquitto.port), FAST)
    async with iface:
        await iface.subscribe("homeassistant/status", on_birth)
        assert await iface.wait_connected(10)
        await publish_once(mosquitto.port, "homeassistant/status", "online")
        await wait_until(lambda: heard == [b"online"])
        for round_ in range(2):
            mosquitto.kill()
            await wait_until(lambda: iface.connection_state is not ConnectionState.CONNECTED)
            await mosquitto.start_async()
            assert await iface.wait_connected(10)
            await publish_once(mosquitto.port, "homeassistant/status", f"birth {round_}")
            await wait_until(lambda r=round_: heard[-1] == f"birth {r}".encode())
        assert iface.stats.total_reconnections == 2
