"""Voltage trend slope and the rest-voltage SoC estimate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from battery_hawk.insight import VoltageTrend, lead_acid_rest_soc

T0 = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)


def test_steady_discharge_gives_its_slope_in_volts_per_hour() -> None:
    trend = VoltageTrend()
    for minute in range(0, 60, 5):
        trend.add(T0 + timedelta(minutes=minute), 12.6 - 0.002 * minute)  # -0.12 V/h
    slope = trend.slope_per_hour()
    assert slope == pytest.approx(-0.12)


def test_too_few_or_too_close_samples_give_no_slope() -> None:
    trend = VoltageTrend(min_points=5, min_span_s=600)
    for second in range(0, 50, 10):
        trend.add(T0 + timedelta(seconds=second), 12.6)
    assert trend.slope_per_hour() is None


def test_old_samples_leave_the_window() -> None:
    trend = VoltageTrend(window_s=3600, min_points=3, min_span_s=60)
    for minute in range(0, 60, 10):  # falling hour
        trend.add(T0 + timedelta(minutes=minute), 13.0 - 0.01 * minute)
    for minute in range(120, 180, 10):  # flat hour, much later
        trend.add(T0 + timedelta(minutes=minute), 12.5)
    assert trend.slope_per_hour() == pytest.approx(0.0)


def test_missing_and_out_of_order_samples_are_ignored() -> None:
    trend = VoltageTrend(min_points=2, min_span_s=0)
    trend.add(T0, 12.0)
    trend.add(T0 + timedelta(hours=1), None)
    trend.add(T0 + timedelta(hours=1), 13.0)
    trend.add(T0 + timedelta(minutes=30), 0.0)
    assert trend.slope_per_hour() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("volts", "soc"), [(12.9, 100.0), (12.70, 100.0), (12.06, 50.0), (12.13, 55.0), (10.0, 0.0)]
)
def test_rest_voltage_maps_to_lead_acid_soc(volts: float, soc: float) -> None:
    assert lead_acid_rest_soc(volts) == pytest.approx(soc)
