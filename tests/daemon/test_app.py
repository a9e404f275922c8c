"""The App over simulated devices and a real mosquitto: what a Home Assistant user sees."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from battery_hawk.app import App
from battery_hawk.config import Config, DeviceConfig, HttpConfig, MqttConfig, StorageConfig
from battery_hawk.demo import demo_config
from battery_hawk.simulator.devices import SimLeagendPoll, SimTransport
from tests.support.brokers import Mosquitto, Subscriber, publish_once, wait_until

Subscribe = Callable[..., Awaitable[Subscriber]]
UNITS = {"voltage": "V", "battery": "%", "temperature": "°C", "current": "A", "power": "W",
         "duration": "min", "energy": "kWh", "signal_strength": "dBm"}


def states(sub: Subscriber) -> dict[str, list[dict[str, object]]]:
    """Every reading per device, from the readings topic (state keeps only the newest)."""
    found: dict[str, list[dict[str, object]]] = {}
    for topic, payload in sub.messages:
        if topic.endswith("/readings") and payload:
            found.setdefault(topic.split("/")[2], []).append(json.loads(payload))
    return found


def make_app(tmp_path: Path, port: int, count: int = 5) -> tuple[App, SimTransport]:
    transport = SimTransport.with_fleet(count)
    config = demo_config(transport, port=port, interval=1.0, storage=str(tmp_path),
                         http_port=0)
    config = dataclasses.replace(config, http=dataclasses.replace(config.http, enabled=False))
    return App(config, transport=transport, stats_interval=1.0), transport


async def test_every_family_reaches_the_broker_with_discovery_and_availability(
    tmp_path: Path, mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    sub = await mqtt_subscriber(mosquitto.port, "#")
    app, _ = make_app(tmp_path, mosquitto.port)
    async with app:
        await sub.wait_for(lambda _: len(states(sub)) == 5
                           and all(len(v) >= 2 for v in states(sub).values()), timeout=20)
        await sub.wait_for(lambda m: any(t.endswith("/stats") for t, _ in m), timeout=10)
    by_device = states(sub)
    models = {doc[0]["model"] for doc in by_device.values()}
    # a Victron device is named by the model id in its advert
    assert models == {"BM6", "BM7", "BM2", "SmartShunt 500A/50mV", "Battery Service"}
    for docs in by_device.values():
        seqs = [int(str(d["seq"])) for d in docs]
        assert seqs == list(range(1, len(seqs) + 1))  # no gaps, no repeats
        assert docs[0]["voltage"] is not None or docs[0]["soc"] is not None
    topics = dict(sub.messages)
    assert topics["battery_hawk/gateway/demo/status"] in (b"online", b"offline")
    assert sub.messages.count(("battery_hawk/gateway/demo/status", b"offline")) == 1
    for did in by_device:
        assert (f"battery_hawk/device/{did}/availability", b"online") in sub.messages
    configs = [(t, json.loads(p)) for t, p in sub.messages
               if t.startswith("homeassistant/sensor/") and p]
    assert configs
    for topic, doc in configs:
        for key in ("unique_id", "state_topic", "device", "availability", "name"):
            assert key in doc, (topic, key)
        if doc.get("device_class") in UNITS:
            # the gateway's uptime is a duration in s, the devices' durations are in min
            wanted = "s" if topic.endswith("/uptime/config") else UNITS[doc["device_class"]]
            assert doc["unit_of_measurement"] == wanted, topic
    assert len({doc["unique_id"] for _, doc in configs}) == len(configs)


async def test_home_assistant_birth_message_resends_discovery(
    tmp_path: Path, mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    app, _ = make_app(tmp_path, mosquitto.port, count=2)
    async with app:
        sub = await mqtt_subscriber(mosquitto.port, "homeassistant/sensor/#")
        await sub.wait_count(1, timeout=20)  # retained discovery
        await sub.wait_for(lambda _: len(states_of(app)) == 2, timeout=20)
        before = len(sub.messages)
        await publish_once(mosquitto.port, "homeassistant/status", b"online")
        await sub.wait_for(lambda m: len(m) >= 2 * before, timeout=10)


def has_readings(app: App, count: int) -> bool:
    return sum(c.status.readings for c in app.coordinators.values()) >= count


def states_of(app: App) -> list[str]:
    return [d for d, c in app.coordinators.items() if c.status.last_reading is not None]


async def test_device_removed_from_config_loses_its_entities(
    tmp_path: Path, mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    app, _ = make_app(tmp_path, mosquitto.port, count=2)
    kept, gone = app.config.devices
    async with app:
        await wait_until(lambda: len(states_of(app)) == 2)
        await app.reload(dataclasses.replace(app.config, devices=(kept,)))
        assert app.mqtt is not None and await app.mqtt.flush(10)
    # a new subscriber sees what is retained: the kept device's entities only. The
    # marker is published after subscribing, so it arrives after every retained message.
    sub = await mqtt_subscriber(mosquitto.port, "#")
    await publish_once(mosquitto.port, "test/marker", b"end")
    await sub.wait_for(lambda m: ("test/marker", b"end") in m, timeout=10)
    retained = {t for t, p in sub.messages if p and t != "test/marker"}
    assert any(kept.device_id in t for t in retained)
    assert not any(gone.device_id in t for t in retained)


async def test_seq_survives_a_daemon_restart(
    tmp_path: Path, mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    sub = await mqtt_subscriber(mosquitto.port, "battery_hawk/device/+/readings")
    for _ in range(2):
        app, _ = make_app(tmp_path, mosquitto.port, count=1)
        async with app:
            await wait_until(partial(has_readings, app, 2))
    await sub.wait_for(lambda m: len(m) >= 4, timeout=10)
    seqs = [json.loads(p)["seq"] for _, p in sub.messages]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_an_alert_raised_before_a_restart_is_not_raised_again(
    tmp_path: Path, mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    sub = await mqtt_subscriber(mosquitto.port, "battery_hawk/device/+/alert")
    for _ in range(2):
        app, _ = make_app(tmp_path, mosquitto.port, count=1)
        device = app.config.devices[0]
        always_low = dataclasses.replace(device.alerts, low_voltage=30.0, hold=0.0)  # every reading
        app = App(dataclasses.replace(app.config, devices=(
            dataclasses.replace(device, alerts=always_low),)), transport=app.transport)
        async with app:
            await wait_until(partial(has_readings, app, 2))
            assert app.mqtt is not None and await app.mqtt.flush(10)
    events = [json.loads(p) for _, p in sub.messages]
    assert [(e["kind"], e["active"]) for e in events] == [("low_voltage", True)]


async def test_a_passive_bm6_is_read_from_its_adverts_without_a_connection(tmp_path: Path) -> None:
    transport = SimTransport.with_fleet(1, advert_interval=0.05)
    device = next(iter(transport.devices.values()))
    assert isinstance(device, SimLeagendPoll) and device.family == "bm6"
    device.advertises_reading = True
    config = Config(
        gateway_id="passive",
        mqtt=MqttConfig(enabled=False),
        http=HttpConfig(enabled=False),
        storage=StorageConfig(path=str(tmp_path)),
        devices=(DeviceConfig(address=device.address, type="bm6", mode="passive",
                              poll_interval=1.0),),
    )
    app = App(config, transport=transport)
    async with app:
        coordinator = next(iter(app.coordinators.values()))
        await wait_until(lambda: coordinator.status.readings >= 2, timeout=10)
        last = coordinator.status.last_reading
    assert transport.connections == 0
    assert last is not None and last.reading.voltage is not None and last.reading.soc is not None
    assert last.reading.temperature is None  # adverts do not carry it
    assert last.rssi == device.rssi
