"""VoltageTrend.backfill: a device's stored history goes into the window in time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from battery_hawk.insight.trends import VoltageTrend

T0 = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_history_fills_the_hole_between_live_samples_in_time_order() -> None:
    trend = VoltageTrend(3600)
    trend.add(T0, 12.6)
    trend.add(T0 + 20 * MIN, 12.4)
    added = trend.backfill([(T0 + m * MIN, 12.6 - m / 100) for m in (18, 2, 10, 6, 14)])
    assert added == 5
    assert [t for t, _ in trend.samples] == [
        (T0 + m * MIN).timestamp() for m in (0, 2, 6, 10, 14, 18, 20)
    ]
    assert trend.slope_per_hour() is not None


def test_samples_held_already_outside_the_window_or_missing_are_skipped() -> None:
    trend = VoltageTrend(600)
    trend.add(T0 + 20 * MIN, 12.4)
    added = trend.backfill([(T0 + 20 * MIN, 12.0), (T0, 12.6), (T0 + 15 * MIN, None),
                            (T0 + 12 * MIN, 12.5)])
    assert added == 1
    assert trend.samples == [((T0 + 12 * MIN).timestamp(), 12.5),
                             ((T0 + 20 * MIN).timestamp(), 12.4)]


def test_live_samples_after_a_backfill_keep_the_slope_right() -> None:
    trend = VoltageTrend(3600)
    trend.add(T0 + 30 * MIN, 12.3)
    trend.backfill([(T0 + m * MIN, 12.6 - m / 100) for m in range(0, 30, 2)])
    for m in range(31, 40):
        trend.add(T0 + m * MIN, 12.6 - m / 100)
    slope = trend.slope_per_hour()
    assert slope is not None and abs(slope - (-0.6)) < 1e-6
