"""Each pipeline stage on its own, and the chain as the App wires it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from battery_hawk.http.metrics import Metrics
from battery_hawk.insight import AlertKind, AlertThresholds
from battery_hawk.models import DeviceInfo, DeviceReading, Reading
from battery_hawk.pipeline import (
    AlertEvents,
    AlertStage,
    AlertState,
    DiscoveryStage,
    MetricsStage,
    Outgoing,
    Pipeline,
    ProcessedReading,
    PublishStage,
    StateOutput,
)
from battery_hawk.publisher import Topics
from battery_hawk.runtime import GatewayStats
from battery_hawk.storage import Announcements

T0 = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)
TOPICS = Topics("battery_hawk", "gw")
CAR = DeviceInfo("car", "AA:BB:CC:DD:EE:01", "Car battery", "BM6", "Leagend", "bm6")


def reading(volts: float, seq: int = 1, **extra: float) -> DeviceReading:
    return DeviceReading(CAR, Reading(voltage=volts, **extra), T0 + timedelta(minutes=seq), seq)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []

    async def __call__(self, topic: str, payload: object, retain: bool) -> None:
        assert isinstance(payload, bytes)
        self.sent.append((topic, payload, retain))

    def topics(self) -> list[str]:
        return [t for t, _, _ in self.sent]


def thresholds(low_voltage: float | None = 11.8) -> AlertThresholds:
    return AlertThresholds(low_voltage=low_voltage)


async def test_alert_stage_adds_state_and_transitions_and_remembers_active(
    tmp_path: Path,
) -> None:
    store = Announcements(tmp_path)
    stage = AlertStage(lambda _: thresholds(), store)
    first = await stage.handle(ProcessedReading(reading(12.6)))
    assert first.alert_changes == ()
    assert first.alerts[AlertKind.LOW_VOLTAGE].active is False
    low = await stage.handle(ProcessedReading(reading(11.5, 2)))
    assert [(c.kind, c.active) for c in low.alert_changes] == [(AlertKind.LOW_VOLTAGE, True)]
    store.flush()  # a clean stop
    assert Announcements(tmp_path).get("car").active == ("low_voltage",)


async def test_alert_stage_seeds_alerts_raised_before_a_restart(tmp_path: Path) -> None:
    store = Announcements(tmp_path)
    store.update("car", ("voltage",), ("low_voltage",))
    store.set_active("car", ["low_voltage"])
    stage = AlertStage(lambda _: thresholds(), store)
    item = await stage.handle(ProcessedReading(reading(11.5)))
    assert item.alert_changes == ()  # already raised: not raised again
    assert item.alerts[AlertKind.LOW_VOLTAGE].active


async def test_alert_stage_passes_a_device_without_alerts_through(tmp_path: Path) -> None:
    stage = AlertStage(lambda _: None, Announcements(tmp_path))
    item = ProcessedReading(reading(1.0))
    assert await stage.handle(item) is item


async def test_alert_stage_forgets_a_device_and_rereads_its_thresholds(tmp_path: Path) -> None:
    current = {"car": thresholds(11.8)}
    stage = AlertStage(current.get, Announcements(tmp_path))
    await stage.handle(ProcessedReading(reading(12.0)))
    current["car"] = thresholds(12.5)
    stage.forget("car")
    item = await stage.handle(ProcessedReading(reading(12.0, 2)))
    assert item.alerts[AlertKind.LOW_VOLTAGE].threshold == 12.5


async def test_discovery_stage_announces_once_and_again_when_a_field_appears(
    tmp_path: Path,
) -> None:
    sent = Recorder()
    stage = DiscoveryStage(TOPICS, Announcements(tmp_path), sent, lambda _: 180)
    await stage.handle(ProcessedReading(reading(12.6)))
    first = sent.topics()
    assert first == ["homeassistant/sensor/battery_hawk_car/voltage/config"]
    await stage.handle(ProcessedReading(reading(12.6, 2)))
    assert sent.topics() == first  # nothing new
    await stage.handle(ProcessedReading(reading(12.6, 3, soc=80.0)))
    assert "homeassistant/sensor/battery_hawk_car/soc/config" in sent.topics()[1:]
    assert all(retain for _, _, retain in sent.sent)


async def test_discovery_stage_removes_the_binary_sensor_of_an_alert_switched_off(
    tmp_path: Path,
) -> None:
    sent = Recorder()
    store = Announcements(tmp_path)
    stage = DiscoveryStage(TOPICS, store, sent, lambda _: 180)
    alerts = AlertStage(lambda _: thresholds(), store)
    await stage.handle(await alerts.handle(ProcessedReading(reading(12.6))))
    topic = "homeassistant/binary_sensor/battery_hawk_car/alert_low_voltage/config"
    assert topic in sent.topics()
    sent.sent.clear()
    await stage.handle(ProcessedReading(reading(12.6, 2)))  # no alert kinds any more
    assert (topic, b"", True) in sent.sent


async def test_publish_stage_sends_state_then_alert_event_then_alert_state(
    tmp_path: Path,
) -> None:
    sent = Recorder()
    publish = PublishStage(sent, [StateOutput(TOPICS), AlertEvents(TOPICS), AlertState(TOPICS)])
    alerts = AlertStage(lambda _: thresholds(), Announcements(tmp_path))
    await publish.handle(await alerts.handle(ProcessedReading(reading(12.6))))
    assert sent.topics() == ["battery_hawk/device/car/state", "battery_hawk/device/car/alerts"]
    sent.sent.clear()
    await publish.handle(await alerts.handle(ProcessedReading(reading(12.5, 2))))
    assert sent.topics() == ["battery_hawk/device/car/state"]  # alert state only on change
    sent.sent.clear()
    await publish.handle(await alerts.handle(ProcessedReading(reading(11.0, 3))))
    assert [(t, r) for t, _, r in sent.sent] == [
        ("battery_hawk/device/car/state", True),
        ("battery_hawk/device/car/alert", False),
        ("battery_hawk/device/car/alerts", True),
    ]
    event = json.loads(sent.sent[1][1])
    assert (event["kind"], event["active"], event["value"]) == ("low_voltage", True, 11.0)
    assert json.loads(sent.sent[0][1])["voltage"] == 11.0


async def test_publish_stage_takes_an_extra_output_after_the_others() -> None:
    sent = Recorder()
    publish = PublishStage(sent, [StateOutput(TOPICS)])
    publish.add_output(lambda item: [Outgoing(f"extra/{item.device_id}", b"x", False)])
    await publish.handle(ProcessedReading(reading(12.6)))
    assert sent.topics() == ["battery_hawk/device/car/state", "extra/car"]


async def test_alert_state_is_sent_again_after_the_device_is_forgotten(tmp_path: Path) -> None:
    sent = Recorder()
    publish = PublishStage(sent, [AlertState(TOPICS)])
    alerts = AlertStage(lambda _: thresholds(), Announcements(tmp_path))
    await publish.handle(await alerts.handle(ProcessedReading(reading(12.6))))
    publish.forget("car")
    await publish.handle(await alerts.handle(ProcessedReading(reading(12.6, 2))))
    assert sent.topics() == ["battery_hawk/device/car/alerts"] * 2


async def test_metrics_stage_counts_the_reading() -> None:
    metrics, stats = Metrics(process=False), GatewayStats()
    await MetricsStage(metrics, stats).handle(ProcessedReading(reading(12.6)))
    text = metrics.render().decode()
    assert stats.readings == 1
    assert 'battery_hawk_voltage_volts{device_id="car"' in text


async def test_pipeline_hands_each_stage_what_the_one_before_returned() -> None:
    seen: list[tuple[str, int]] = []

    class Tag:
        def __init__(self, name: str) -> None:
            self.name = name

        async def handle(self, item: ProcessedReading) -> ProcessedReading:
            seen.append((self.name, len(item.alert_changes)))
            return ProcessedReading(item.reading, alert_changes=(*item.alert_changes, None))  # type: ignore[arg-type]

    result = await Pipeline([Tag("a"), Tag("b"), Tag("c")]).process(reading(12.6))
    assert seen == [("a", 0), ("b", 1), ("c", 2)]
    assert len(result.alert_changes) == 3
