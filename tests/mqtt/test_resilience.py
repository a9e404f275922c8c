"""Broker crashes, refusals and dead links against a real mosquitto."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from battery_hawk.mqtt import ConnectionState, MQTTInterface, QueuedMessage, ReconnectionConfig
from tests.support.brokers import Mosquitto, Subscriber, TcpGate, wait_until

from .conftest import FAST, settings_for


async def test_every_qos1_message_survives_five_broker_kills(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """mosquitto runs with persistence false, so a SIGKILL wipes its sessions: a
    subscriber cannot hold a persistent session across the kill. Instead, after each
    restart the test re-subscribes *before* the interface may reconnect, by holding the
    interface behind a TcpGate (no timing race). Every message the interface publishes
    after that point has a subscriber; messages the broker had acknowledged before the
    kill were forwarded to the subscriber before the acknowledgement (mosquitto queues
    the forward first), and unacknowledged ones are resent by the interface. So the
    subscriber must see every sequence number; duplicates are allowed and counted.
    """
    total = 1500
    kills = 5
    caplog.set_level(logging.WARNING)
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, "bh/stream") as sub:
        iface = MQTTInterface(settings_for(gate.port), FAST, status_topic="bh/gw/status")
        async with iface:
            assert await iface.wait_connected(10)

            async def produce() -> None:
                for i in range(total):
                    await iface.publish("bh/stream", str(i), qos=1)
                    await asyncio.sleep(0.002)

            producer = asyncio.create_task(produce(), name="test-producer")
            for k in range(kills):
                # let some messages through on this connection, then crash the broker
                mark = len(sub.messages)
                await sub.wait_count(mark + 100, timeout=20)
                gate.shut()
                mosquitto.kill()
                await wait_until(lambda: iface.connection_state is not ConnectionState.CONNECTED)
                await mosquitto.start_async()
                await sub.reconnect()
                gate.open()
                assert await iface.wait_connected(10), f"no reconnect after kill {k + 1}"
            async with asyncio.timeout(30):
                await producer
            assert await iface.flush(20)
            await sub.wait_for(lambda msgs: {int(p) for _, p in msgs} >= set(range(total)), 20)
        stats = iface.stats
    seqs = [int(p) for p in sub.payloads]
    duplicates = len(seqs) - len(set(seqs))
    print(f"received {len(seqs)} messages for {total} published, {duplicates} duplicates")
    assert set(seqs) == set(range(total))
    assert stats.messages_dropped == 0
    assert stats.total_reconnections == kills
    assert stats.total_disconnections == kills + 1
    assert stats.messages_published >= total
    # one warning per outage, no tracebacks from paho or asyncio ("Task/Future
    # exception was never retrieved" is logged when the object is collected)
    gc.collect()
    lost = [r for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == kills
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


async def test_message_is_dropped_after_retry_limit_and_handed_to_dead_letter() -> None:
    # mosquitto disconnects a client that sends a packet over max_packet_size: a real
    # "poison" message whose every send fails. Its neighbours must still get through.
    dead: list[tuple[QueuedMessage, str]] = []
    config = ReconnectionConfig(max_retries=0, initial_retry_delay=0.05, max_retry_delay=0.1,
                                connection_timeout=2, operation_timeout=2,
                                message_retry_limit=2)
    with Mosquitto(extra_config="max_packet_size 1000") as broker:
        async with Subscriber(broker.port, "bh/poison/#") as sub:
            iface = MQTTInterface(settings_for(broker.port), config,
                                  on_dead_letter=lambda m, why: dead.append((m, why)))
            async with iface:
                await iface.publish("bh/poison/a", "before")
                await iface.publish("bh/poison/big", b"x" * 5000)
                await iface.publish("bh/poison/b", "after")
                assert await iface.flush(10)
                await sub.wait_for(lambda msgs: ("bh/poison/b", b"after") in msgs)
                stats = iface.stats
    assert [(m.topic, why, m.failures) for m, why in dead] == [("bh/poison/big", "retry_limit", 3)]
    assert stats.dropped_retry_limit == 1 and stats.messages_dropped == 1
    assert stats.messages_failed >= 3
    assert sub.payloads.count(b"before") >= 1 and b"x" * 5000 not in sub.payloads


async def test_failed_after_max_retries_then_heals_by_itself(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="battery_hawk.mqtt")
    config = ReconnectionConfig(max_retries=3, initial_retry_delay=0.05, max_retry_delay=0.3,
                                connection_timeout=2, operation_timeout=2)
    mosquitto.kill()
    iface = MQTTInterface(settings_for(mosquitto.port), config)
    async with iface:
        await wait_until(lambda: iface.connection_state is ConnectionState.FAILED)
        assert iface.stats.consecutive_failures == 3
        await iface.publish("bh/heal", "queued while FAILED")
        assert iface.stats.queue_size == 1
        await wait_until(lambda: iface.stats.consecutive_failures >= 5)  # probes go on
        assert iface.connection_state is ConnectionState.FAILED
        await mosquitto.start_async()
        # it keeps probing every max_retry_delay (0.3 s), so it connects on its own
        assert await iface.wait_connected(5)
        assert await iface.flush(5)
        stats = iface.stats
    # FAILED is logged once as an error, though the probing went on meanwhile
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "FAILED" in errors[0]
    assert stats.consecutive_failures == 0
    assert stats.messages_published == 1
    assert stats.last_connection_attempt is not None


async def test_explicit_connect_restarts_the_sequence_after_failed(mosquitto: Mosquitto) -> None:
    config = ReconnectionConfig(max_retries=2, initial_retry_delay=0.05, max_retry_delay=60,
                                connection_timeout=2, operation_timeout=2)
    mosquitto.kill()
    iface = MQTTInterface(settings_for(mosquitto.port), config)
    async with iface:
        await wait_until(lambda: iface.connection_state is ConnectionState.FAILED)
        await mosquitto.start_async()
        await iface.connect()  # without it the next probe would be a minute away
        assert iface.stats.consecutive_failures == 0
        assert await iface.wait_connected(5)


async def test_zero_max_retries_never_reaches_failed(mosquitto: Mosquitto) -> None:
    mosquitto.kill()
    iface = MQTTInterface(settings_for(mosquitto.port), FAST)  # max_retries=0
    async with iface:
        await wait_until(lambda: iface.stats.consecutive_failures >= 5)
        assert iface.connection_state is ConnectionState.CONNECTING


async def test_health_check_reconnects_when_the_link_is_silently_dead(
    mosquitto: Mosquitto,
) -> None:
    # A frozen relay neither closes nor forwards: only the health check can notice.
    config = ReconnectionConfig(max_retries=0, initial_retry_delay=0.05, max_retry_delay=0.1,
                                connection_timeout=2, operation_timeout=0.3,
                                health_check_interval=0.2)
    async with TcpGate(mosquitto.port) as gate:
        iface = MQTTInterface(settings_for(gate.port), config)
        async with iface:
            assert await iface.wait_connected(5)
            gate.freeze()
            await wait_until(lambda: iface.stats.total_reconnections == 1)
            assert "health check" in (iface.stats.last_error or "")
            await iface.publish("bh/alive", "again")
            assert await iface.flush(5)
