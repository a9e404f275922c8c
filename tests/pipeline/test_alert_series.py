"""Alerts over synthetic series, through the insight and alert stages as the App wires them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from battery_hawk.insight import AlertKind, AlertThresholds
from battery_hawk.insight.device import InsightSettings
from battery_hawk.insight.profile import BatteryProfile, Chemistry
from battery_hawk.insight.quality import LinkReport, Quality
from battery_hawk.models import DeviceInfo, DeviceReading, Reading
from battery_hawk.pipeline import AlertStage, InsightStage, Pipeline
from battery_hawk.storage import Announcements

T0 = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)
CAR = DeviceInfo("car", "AA:BB:CC:DD:EE:01", "Car battery", "BM2", "Leagend", "bm2")
LIFEPO4 = BatteryProfile(Chemistry.LIFEPO4, 12)


def chain(tmp_path: Path, thresholds: AlertThresholds,
          settings: InsightSettings | None = None) -> tuple[Pipeline, AlertStage]:
    alerts = AlertStage(lambda _: thresholds, Announcements(tmp_path))
    insight = InsightStage(lambda _: settings or InsightSettings(low_voltage=11.8))
    return Pipeline([insight, alerts]), alerts


async def run(pipeline: Pipeline, readings: list[Reading], step_s: float = 60.0,
              ) -> list[tuple[AlertKind, bool]]:
    changes: list[tuple[AlertKind, bool]] = []
    for i, reading in enumerate(readings):
        dr = DeviceReading(CAR, reading, T0 + timedelta(seconds=i * step_s), i + 1)
        item = await pipeline.process(dr)
        changes += [(c.kind, c.active) for c in item.alert_changes]
    return changes


async def test_a_cranking_dip_is_not_a_low_voltage_alert(tmp_path: Path) -> None:
    pipeline, _ = chain(tmp_path, AlertThresholds(low_voltage=11.8, hold=60))
    volts = [12.6] * 5 + [9.6] + [12.5] * 5  # the starter pulls it down for one reading
    assert await run(pipeline, [Reading(voltage=v) for v in volts], step_s=30) == []


async def test_a_lasting_low_raises_once_after_the_hold_and_clears_once(tmp_path: Path) -> None:
    pipeline, _ = chain(tmp_path, AlertThresholds(low_voltage=11.8, hold=60))
    volts = [12.4, 11.7, 11.6, 11.6, 11.5, 11.85, 12.0]
    changes = await run(pipeline, [Reading(voltage=v) for v in volts], step_s=30)
    assert changes == [(AlertKind.LOW_VOLTAGE, True), (AlertKind.LOW_VOLTAGE, False)]


async def test_noise_at_the_threshold_raises_one_alert(tmp_path: Path) -> None:
    pipeline, _ = chain(tmp_path, AlertThresholds(low_voltage=11.8, voltage_band=0.1))
    rng = random.Random(3)
    volts = [11.8 + rng.uniform(-0.05, 0.05) for _ in range(200)]
    assert await run(pipeline, [Reading(voltage=v) for v in volts]) == [
        (AlertKind.LOW_VOLTAGE, True)]


async def test_a_device_without_soc_or_temperature_gets_no_such_alerts(tmp_path: Path) -> None:
    thresholds = AlertThresholds(low_voltage=11.8, low_soc=20, high_temperature=55,
                                 poor_connection=True)
    pipeline, alerts = chain(tmp_path, thresholds,
                             InsightSettings(low_voltage=11.8, estimate_soc=False))
    await run(pipeline, [Reading(voltage=12.5)] * 3)
    assert set(alerts.status("car")) == {AlertKind.LOW_VOLTAGE, AlertKind.POOR_CONNECTION}


async def test_with_the_estimate_a_voltage_only_device_gets_a_soc_alert_at_rest(
    tmp_path: Path,
) -> None:
    pipeline, alerts = chain(tmp_path, AlertThresholds(low_soc=20))
    changes = await run(pipeline, [Reading(voltage=11.5)] * 20)  # resting, about 16 %
    assert changes == [(AlertKind.LOW_SOC, True)]
    assert AlertKind.LOW_SOC in alerts.status("car")


async def test_charging_a_lifepo4_below_freezing_raises_and_stopping_clears(
    tmp_path: Path,
) -> None:
    pipeline, _ = chain(tmp_path, AlertThresholds(low_temperature=0.0),
                        InsightSettings(LIFEPO4, low_voltage=12.0))
    readings = ([Reading(voltage=13.3, current=5.0, temperature=-4.0)] * 3
                + [Reading(voltage=13.3, current=0.0, temperature=-4.0)] * 2
                + [Reading(voltage=13.3, current=-3.0, temperature=-6.0)] * 2)
    assert await run(pipeline, readings) == [
        (AlertKind.LOW_TEMPERATURE, True), (AlertKind.LOW_TEMPERATURE, False)]


async def test_cold_while_discharging_is_no_alert(tmp_path: Path) -> None:
    pipeline, _ = chain(tmp_path, AlertThresholds(low_temperature=0.0),
                        InsightSettings(LIFEPO4, low_voltage=12.0))
    readings = [Reading(voltage=13.1, current=-2.0, temperature=-10.0)] * 5
    assert await run(pipeline, readings) == []


async def test_stale_raises_between_readings_and_the_next_reading_clears_it(
    tmp_path: Path,
) -> None:
    pipeline, alerts = chain(tmp_path, AlertThresholds(stale=180.0))
    assert await run(pipeline, [Reading(voltage=12.5)]) == []
    later = T0 + timedelta(minutes=5)
    assert alerts.check("car", "Car", later, 120.0, None) == []
    raised = alerts.check("car", "Car", later, 200.0, None)
    assert [(c.kind, c.active, c.value) for c in raised] == [(AlertKind.STALE, True, 200.0)]
    assert alerts.check("car", "Car", later, 300.0, None) == []  # raised once
    assert await run(pipeline, [Reading(voltage=12.5)]) == [(AlertKind.STALE, False)]


async def test_poor_connection_and_error_rate_follow_the_link(tmp_path: Path) -> None:
    _, alerts = chain(tmp_path, AlertThresholds(poor_connection=True, high_error_rate=50))

    def link(rate: float) -> LinkReport:
        from battery_hawk.insight.quality import grade

        return LinkReport(attempts=10, successes=int(rate * 10), success_rate=rate,
                          quality=grade(success_rate=rate))

    seen: list[tuple[AlertKind, bool]] = []
    for rate in (1.0, 0.95, 0.8, 0.4, 0.6, 0.8, 0.92, 1.0):
        changes = alerts.check("car", "Car", T0, 0.0, link(rate))
        seen += [(c.kind, c.active) for c in changes]
    assert seen == [
        (AlertKind.POOR_CONNECTION, True),   # 0.8: POOR
        (AlertKind.HIGH_ERROR_RATE, True),   # 0.4: 60 % failed
        (AlertKind.HIGH_ERROR_RATE, False),  # 0.6: 40 % failed, below 50 - 5
        (AlertKind.POOR_CONNECTION, False),  # 0.92: GOOD again
    ]
    assert Quality.GOOD > Quality.POOR
