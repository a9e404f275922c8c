"""Insight on synthetic series: profiles, trends, SoC estimate, link quality."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from battery_hawk.insight.device import DeviceInsight, InsightSettings
from battery_hawk.insight.profile import BatteryProfile, Chemistry
from battery_hawk.insight.quality import LinkWindow, Quality, grade
from battery_hawk.insight.trends import Trend, classify_trend, hours_to_threshold
from battery_hawk.models import DeviceInfo, DeviceReading, Reading

T0 = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)
BM2 = DeviceInfo("van", "AA:BB:CC:DD:EE:02", "Van", "BM2", "Leagend", "bm2")


def series(volts: list[float], *, step_s: float = 60.0, **fields: float) -> list[DeviceReading]:
    return [DeviceReading(BM2, Reading(voltage=v, **fields), T0 + timedelta(seconds=i * step_s),
                          i + 1, duration=2.0) for i, v in enumerate(volts)]


@pytest.mark.parametrize(("chemistry", "nominal", "low", "cells"), [
    ("lead_acid", 12, 11.8, 6), ("agm", 24, 23.6, 12), ("lifepo4", 12, 12.0, 4),
    ("lifepo4", 24, 24.0, 8), ("lifepo4", 48, 48.0, 16), ("li_ion", 12, 10.2, 3),
])
def test_profile_scales_the_low_voltage_default_with_the_bank(
    chemistry: str, nominal: int, low: float, cells: int
) -> None:
    profile = BatteryProfile(Chemistry(chemistry), nominal)
    assert (profile.low_voltage, profile.cells) == (low, cells)


@pytest.mark.parametrize(("chemistry", "nominal", "volts", "soc"), [
    ("lead_acid", 12, 12.06, 50.0),   # the flooded 12 V table
    ("agm", 12, 12.30, 50.0),         # Discover Table 5, AGM column
    ("gel", 24, 24.70, 50.0),         # gel 12.35 V per 12 V block
    ("lifepo4", 12, 13.20, 40.0),     # 3.30 V a cell
    ("lifepo4", 12, 14.40, 100.0),    # above the table: clamped
    ("li_ion", 12, 12.0, 79.0),       # 4.00 V a cell
    ("lead_acid", 12, 9.0, 0.0),
])
def test_rest_soc_follows_the_table_of_the_chemistry(
    chemistry: str, nominal: int, volts: float, soc: float
) -> None:
    assert BatteryProfile(Chemistry(chemistry), nominal).rest_soc(volts) == pytest.approx(soc)


def test_unknown_nominal_voltage_is_refused() -> None:
    with pytest.raises(ValueError):
        BatteryProfile(Chemistry.AGM, 18)


def test_a_charge_curve_is_charging_and_gives_no_soc_estimate() -> None:
    insight = DeviceInsight(InsightSettings(low_voltage=11.8))
    rising = [12.2 + 0.6 * i / 60 for i in range(30)]  # +0.6 V/h under a charger
    results = [insight.observe(r) for r in series(rising)]
    last = results[-1]
    assert last.trend is Trend.CHARGING
    assert last.voltage_slope == pytest.approx(0.6, rel=1e-6)
    assert last.soc_estimated is None and last.time_to_low_h is None
    assert results[0].trend is None  # too little data yet: no guess


def test_a_discharge_curve_projects_the_time_to_the_low_threshold() -> None:
    insight = DeviceInsight(InsightSettings(low_voltage=11.8))
    falling = [12.6 - 0.2 * i / 60 for i in range(30)]  # -0.2 V/h
    last = [insight.observe(r) for r in series(falling)][-1]
    assert last.trend is Trend.DISCHARGING
    expected = (falling[-1] - 11.8) / 0.2
    assert last.time_to_low_h == pytest.approx(expected, rel=1e-6)
    assert last.payload_fields()["time_to_low_mins"] == round(expected * 60)


def test_a_battery_at_rest_gets_a_soc_estimate_for_its_chemistry() -> None:
    rng = random.Random(7)
    noisy = [13.2 + rng.uniform(-0.01, 0.01) for _ in range(30)]
    lifepo4 = DeviceInsight(InsightSettings(BatteryProfile(Chemistry.LIFEPO4, 12)))
    last = [lifepo4.observe(r) for r in series(noisy)][-1]
    assert last.trend is Trend.IDLE
    assert last.soc_estimated == pytest.approx(40.0, abs=6)
    off = DeviceInsight(InsightSettings(estimate_soc=False))
    assert [off.observe(r) for r in series(noisy)][-1].soc_estimated is None


def test_a_device_that_reports_its_soc_gets_no_estimate() -> None:
    insight = DeviceInsight(InsightSettings())
    last = [insight.observe(r) for r in series([12.5] * 30, soc=80.0)][-1]
    assert last.trend is Trend.IDLE and last.soc_estimated is None


def test_measured_current_decides_the_trend_before_the_slope() -> None:
    assert classify_trend(-2.0, 0.5, 0.12) is Trend.DISCHARGING
    assert classify_trend(0.05, -0.5, 0.12) is Trend.IDLE
    assert classify_trend(None, None, 0.12, state="charging") is Trend.CHARGING
    assert classify_trend(None, 0.05, 0.12) is Trend.IDLE
    assert classify_trend(None, None, 0.12) is None


def test_time_to_threshold_only_while_falling_above_it() -> None:
    assert hours_to_threshold(12.4, -0.1, 11.8) == pytest.approx(6.0)
    assert hours_to_threshold(12.4, 0.1, 11.8) is None
    assert hours_to_threshold(11.7, -0.1, 11.8) == 0.0
    assert hours_to_threshold(12.4, -0.0001, 11.8) is None  # months away: no figure


def test_grade_is_the_worst_of_the_known_figures() -> None:
    assert grade(rssi=-60, success_rate=1.0, latency_s=1.0, missed_ratio=0.0) is Quality.EXCELLENT
    assert grade(rssi=-85, success_rate=1.0) is Quality.GOOD
    assert grade(rssi=-90, success_rate=1.0) is Quality.POOR
    assert grade(success_rate=0.5) is Quality.CRITICAL
    assert grade(latency_s=6.0) is Quality.GOOD
    assert grade() is None


def test_a_link_that_degrades_and_recovers() -> None:
    t0 = T0.timestamp()
    link = LinkWindow(interval=60, window_s=3600)
    link.start(t0)
    minute = 0

    def run(pattern: str, repeat: int) -> Quality | None:
        nonlocal minute
        for _ in range(repeat):
            for ok in pattern:
                minute += 1
                at = t0 + minute * 60
                if ok == "+":
                    link.success(at, latency=2.0)
                else:
                    link.failure(at)
        return link.report(t0 + minute * 60).quality

    assert run("+", 30) is Quality.EXCELLENT
    assert run("+-", 15) in (Quality.POOR, Quality.CRITICAL)  # every other read fails
    assert run("-", 20) is Quality.CRITICAL
    assert run("+", 120) is Quality.EXCELLENT  # the bad hour has left the window
    report = link.report(t0 + minute * 60)
    assert report.success_rate == 1.0 and report.latency_p50 == 2.0 and report.missed == 0


def test_missed_readings_count_against_the_link() -> None:
    t0 = T0.timestamp()
    link = LinkWindow(interval=60, window_s=3600)
    link.start(t0)
    for minute in range(0, 60, 3):  # one reading in three arrives, none fail visibly
        link.success(t0 + minute * 60 + 59)
    report = link.report(t0 + 3600)
    # 19 gaps of 180 s miss two readings each; the 121 s since the last one miss one more
    assert report.missed == 39 and report.quality is Quality.CRITICAL


def test_a_passive_device_that_can_only_emit_on_its_next_advert_misses_nothing() -> None:
    t0 = T0.timestamp()
    link = LinkWindow(interval=1.0, window_s=600)
    link.start(t0)
    at = t0
    for i in range(300):  # adverts every second: readings come 1 or 2 s apart
        at += 1.0 if i % 2 else 1.9
        link.success(at, rssi=-60)
    report = link.report(at + 0.5)
    assert report.missed == 0 and report.quality is Quality.EXCELLENT
