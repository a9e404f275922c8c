"""The App owns its retained topics: re-asserted on every new session, births debounced."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiomqtt

from battery_hawk.app import App
from battery_hawk.demo import demo_config
from battery_hawk.simulator.devices import SimTransport
from tests.support.brokers import Mosquitto, Subscriber, publish_once, wait_until

Subscribe = Callable[..., Awaitable[Subscriber]]


def make_app(tmp_path: Path, port: int, count: int = 2, **kwargs: float) -> App:
    transport = SimTransport.with_fleet(count)
    config = demo_config(transport, port=port, interval=0.5, storage=str(tmp_path),
                         http_port=0)
    config = dataclasses.replace(config, http=dataclasses.replace(config.http, enabled=False))
    return App(config, transport=transport, **kwargs)


def readings_of(app: App) -> int:
    return sum(c.status.readings for c in app.coordinators.values())


async def retained_now(port: int, subscribe: Subscribe) -> dict[str, bytes]:
    """What a new subscriber is given as retained: everything before our marker."""
    sub = await subscribe(port, "#")
    await publish_once(port, "test/marker", b"end")
    await sub.wait_for(lambda m: ("test/marker", b"end") in m, timeout=10)
    found = {}
    for topic, payload in sub.messages:
        if topic == "test/marker":
            break
        found[topic] = payload
    return found


async def test_readings_topic_has_every_reading_state_only_the_newest(
    tmp_path: Path, mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    sub = await mqtt_subscriber(mosquitto.port, "battery_hawk/device/+/+")
    app = make_app(tmp_path, mosquitto.port, count=1)
    async with app:
        await wait_until(lambda: readings_of(app) >= 3, timeout=20)
        assert app.mqtt is not None and await app.mqtt.flush(10)
        did = next(iter(app.coordinators))
        await sub.wait_for(lambda m: sum(t.endswith("/readings") for t, _ in m) >= 3)
    readings = [json.loads(p) for t, p in sub.messages if t.endswith("/readings")]
    states = [json.loads(p) for t, p in sub.messages if t.endswith("/state")]
    assert [r["seq"] for r in readings] == list(range(1, len(readings) + 1))
    for reading in readings:  # the same document as state, original timestamp and seq
        assert reading in states or reading["seq"] > states[-1]["seq"]
    retained = await retained_now(mosquitto.port, mqtt_subscriber)
    assert f"battery_hawk/device/{did}/readings" not in retained
    assert json.loads(retained[f"battery_hawk/device/{did}/state"])["seq"] == max(
        s["seq"] for s in states)


async def test_a_broker_that_lost_its_retained_store_is_whole_again(
    tmp_path: Path, mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    app = make_app(tmp_path, mosquitto.port, count=2)
    async with app:
        await wait_until(lambda: readings_of(app) >= 4, timeout=20)
        assert app.mqtt is not None and await app.mqtt.flush(10)
        before = await retained_now(mosquitto.port, mqtt_subscriber)
        mosquitto.kill()  # persistence false: every retained message is gone
        rounds = app.retained.reassertions
        await mosquitto.start_async()
        assert await retained_now(mosquitto.port, mqtt_subscriber) == {}
        await wait_until(lambda: app.retained.reassertions > rounds, timeout=15)
        assert await app.mqtt.flush(10)
        after = await retained_now(mosquitto.port, mqtt_subscriber)
    owned = {t for t in before if not t.endswith("/state")}  # state moves on meanwhile
    assert owned <= set(after)
    for did in app.coordinators:
        assert after[f"battery_hawk/device/{did}/availability"] == b"online"
        assert f"battery_hawk/device/{did}/state" in after
    assert after["battery_hawk/gateway/demo/status"] == b"online"
    assert any(t.startswith("homeassistant/sensor/") for t in after)


async def test_a_flood_of_births_re_announces_at_most_twice_and_drops_nothing(
    tmp_path: Path, mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    sub = await mqtt_subscriber(mosquitto.port, "#")
    app = make_app(tmp_path, mosquitto.port, count=2, birth_debounce=5.0)
    async with app:
        await wait_until(lambda: readings_of(app) >= 4, timeout=20)
        assert app.mqtt is not None and await app.mqtt.flush(10)
        config_topic = next(t for t, _ in sub.messages if t.startswith("homeassistant/sensor/"))
        sent_before = [t for t, _ in sub.messages].count(config_topic)
        flood_started = time.monotonic()
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as ha:
            await asyncio.gather(*(  # a burst, not one round trip after another
                ha.publish("homeassistant/status", b"online", qos=1) for _ in range(200)))
        await wait_until(lambda: app.retained.births_received == 200, timeout=30)
        flood_span = time.monotonic() - flood_started  # an upper bound of the births' span
        await wait_until(lambda: app.retained.births_answered >= 1, timeout=10)
        seen = readings_of(app)
        await wait_until(lambda: readings_of(app) >= seen + 4, timeout=20)  # still flowing
        assert await app.mqtt.flush(10)
        stats = app.mqtt.stats
    resent = [t for t, _ in sub.messages].count(config_topic) - sent_before
    # one round at once, then at most one per debounce interval, the last one at most an
    # interval after the last birth: 200 births in under one interval cost two rounds.
    rounds_allowed = 2 + int(flood_span // 5.0)
    assert 1 <= app.retained.births_answered <= rounds_allowed
    assert 1 <= resent <= app.retained.births_answered
    assert stats.messages_dropped == 0
    for did in app.coordinators:
        seqs = [json.loads(p)["seq"] for t, p in sub.messages
                if t == f"battery_hawk/device/{did}/readings"]
        assert seqs == list(range(1, len(seqs) + 1))
