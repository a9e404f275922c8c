"""Stopping: disconnect() always ends, and the retained status never stays ``online``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import pytest

from battery_hawk.mqtt import MQTTInterface, ReconnectionConfig
from battery_hawk.mqtt.supervisor import raise_if_cancelled, stop_tasks
from tests.support.brokers import Mosquitto, Subscriber, TcpGate

from .conftest import FAST, settings_for


async def _swallow_one_cancel(stop: asyncio.Event) -> None:
    """Behave like a task whose cancel asyncio.wait_for (3.11) swallowed."""
    with contextlib.suppress(asyncio.CancelledError):
        await stop.wait()
    await stop.wait()


async def test_stop_tasks_ends_a_task_that_swallowed_its_cancel() -> None:
    task = asyncio.create_task(_swallow_one_cancel(asyncio.Event()), name="test-swallower")
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await stop_tasks([task])
    assert task.cancelled()


async def test_raise_if_cancelled_honours_a_swallowed_cancel() -> None:
    passed = []

    async def carry_on() -> None:
        # swallowed, as wait_for does when the result is already there
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        raise_if_cancelled()
        passed.append(True)

    task = asyncio.create_task(carry_on(), name="test-carry-on")
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled() and not passed


async def test_disconnect_right_after_start_never_hangs(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Stop while CONNACK, the ``online`` PUBACK or a SUBACK is on its way.

    aiomqtt awaits those with asyncio.wait_for, which on Python 3.11 swallows a cancel
    arriving in the same loop iteration as the acknowledgement; the connection task
    then waited on the session for ever and disconnect() with it (about 3 stops in 100
    hung). Four interfaces stop concurrently, 50 times each, after 0-20 ms. No stop may
    hang, and none may even need cancelling twice (stop_tasks' safety net).
    """
    caplog.set_level(logging.DEBUG, logger="battery_hawk.mqtt")
    rng = random.Random(20240611)
    delays = [[rng.uniform(0, 0.02) for _ in range(50)] for _ in range(4)]
    connected = 0

    async def start_stop(k: int) -> None:
        nonlocal connected
        for i, delay in enumerate(delays[k]):
            iface = MQTTInterface(settings_for(mosquitto.port, f"bh-stop-{k}"), FAST,
                                  status_topic=f"bh/stop/{k}/status")
            await iface.subscribe(f"bh/stop/{k}/cmd", lambda topic, payload: None)
            await iface.start()
            await asyncio.sleep(delay)
            try:
                async with asyncio.timeout(5):
                    await iface.disconnect()
            except TimeoutError:
                pytest.fail(f"disconnect() of interface {k} hung in round {i} "
                            f"(stopped {delay * 1000:.1f} ms after start)")
            connected += iface.stats.total_connections

    async with asyncio.timeout(60):
        await asyncio.gather(*(start_stop(k) for k in range(4)))
    # the delays straddle the connection: some stops came before, most after CONNACK
    assert 50 < connected < 200
    twice = [r.getMessage() for r in caplog.records if "cancelling again" in r.getMessage()]
    assert twice == []


async def test_status_goes_offline_by_the_last_will_when_offline_publish_fails(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """The ``offline`` PUBLISH is lost, so its PUBACK never comes; a DISCONNECT after
    that would reach the broker, which would then discard the Last Will and keep
    ``online`` retained. The interface must drop the link without a DISCONNECT."""
    # no health-check UNSUBSCRIBE or PINGREQ may be the packet the relay loses
    config = ReconnectionConfig(max_retries=0, initial_retry_delay=0.05, max_retry_delay=0.2,
                                connection_timeout=2.0, operation_timeout=0.3,
                                health_check_interval=60)
    topic = "bh/gw/will/status"
    async with TcpGate(mosquitto.port) as relay, Subscriber(mosquitto.port, topic) as sub:
        iface = MQTTInterface(settings_for(relay.port, "bh-will-gw"), config,
                              status_topic=topic)
        async with iface:
            assert await iface.wait_connected(5)
            await sub.wait_for(lambda msgs: msgs[-1:] == [(topic, b"online")])
            relay.drop_next()  # the offline PUBLISH goes nowhere
            async with asyncio.timeout(5):
                await iface.disconnect()
            assert relay.to_drop == 0
            with contextlib.suppress(TimeoutError):
                await sub.wait_for(lambda msgs: msgs[-1:] == [(topic, b"offline")], timeout=3)
        assert sub.payloads == [b"online", b"offline"]
    assert any("Last Will" in r.getMessage() for r in caplog.records)
    # what a newcomer sees: the retained status
    async with Subscriber(mosquitto.port, topic) as late:
        await late.wait_count(1, timeout=5)
    assert late.payloads == [b"offline"]
