"""Cheap trends over recent readings: voltage slope, and a rest-voltage SoC estimate (pure)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from datetime import datetime

__all__ = ["VoltageTrend", "lead_acid_rest_soc"]


class VoltageTrend:
    """Least-squares voltage slope in V/h over a sliding time window.

    A slope needs at least `min_points` samples spanning at least `min_span_s`; before
    that it is None rather than a number made from noise. Memory is bounded by
    `max_points` whatever the reading rate.
    """

    def __init__(
        self,
        window_s: float = 3600.0,
        *,
        min_points: int = 5,
        min_span_s: float = 600.0,
        max_points: int = 720,
    ) -> None:
        if window_s <= 0 or min_points < 2 or max_points < min_points:
            raise ValueError("need window_s > 0 and 2 <= min_points <= max_points")
        self._window = window_s
        self._min_points = min_points
        self._min_span = min_span_s
        self._points: deque[tuple[float, float]] = deque(maxlen=max_points)

    def add(self, at: datetime, voltage: float | None) -> None:
        """Record one sample; None, non-finite values and time going backwards are skipped."""
        if voltage is None or not math.isfinite(voltage):
            return
        t = at.timestamp()
        if self._points and t < self._points[-1][0]:
            return
        self._points.append((t, float(voltage)))
        while self._points and t - self._points[0][0] > self._window:
            self._points.popleft()

    def slope_per_hour(self) -> float | None:
        """dV/dt in volts per hour, or None while there is too little data."""
        n = len(self._points)
        if n < self._min_points or self._points[-1][0] - self._points[0][0] < self._min_span:
            return None
        t0 = self._points[0][0]
        mean_t = sum(t - t0 for t, _ in self._points) / n
        mean_v = sum(v for _, v in self._points) / n
        cov = sum((t - t0 - mean_t) * (v - mean_v) for t, v in self._points)
        var = sum((t - t0 - mean_t) ** 2 for t, _ in self._points)
        return None if var == 0 else cov / var * 3600.0


# Open-circuit voltage of a 12 V flooded lead-acid battery at rest (no current for some
# hours, about 25 °C) against state of charge: a commonly published approximation. AGM
# reads roughly 0.1 V higher; lithium (LiFePO4) is too flat for this to mean anything.
_REST_TABLE: tuple[tuple[float, float], ...] = (
    (10.50, 0.0),
    (11.31, 10.0),
    (11.58, 20.0),
    (11.75, 30.0),
    (11.90, 40.0),
    (12.06, 50.0),
    (12.20, 60.0),
    (12.32, 70.0),
    (12.42, 80.0),
    (12.50, 90.0),
    (12.70, 100.0),
)


def lead_acid_rest_soc(voltage: float) -> float:
    """Approximate SoC (%) of a resting 12 V lead-acid battery from its voltage, clamped."""
    volts = [v for v, _ in _REST_TABLE]
    if voltage <= volts[0]:
        return 0.0
    if voltage >= volts[-1]:
        return 100.0
    i = bisect_left(volts, voltage)
    (v0, s0), (v1, s1) = _REST_TABLE[i - 1], _REST_TABLE[i]
    return s0 + (s1 - s0) * (voltage - v0) / (v1 - v0)
