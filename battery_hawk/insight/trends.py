"""Cheap trends over recent readings: voltage slope, charging / discharging / idle, the time
until a low-voltage threshold, and a 12 V lead-acid rest-voltage SoC estimate (pure)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

__all__ = [
    "IDLE_CURRENT_A",
    "Trend",
    "VoltageTrend",
    "classify_trend",
    "hours_to_threshold",
    "lead_acid_rest_soc",
]


class VoltageTrend:
    """Least-squares voltage slope in V/h over a sliding time window.

    A slope needs at least `min_points` samples spanning at least `min_span_s`; before
    that it is None rather than a number made from noise. Memory is bounded by
    `max_points` whatever the reading rate. Running sums make add and slope O(1); they
    are rebuilt from the samples now and then so rounding cannot pile up.
    """

    _REBUILD_EVERY = 1024

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
        self._max_points = max_points
        self._points: deque[tuple[float, float]] = deque()
        self._origin = 0.0
        self._sums = [0.0, 0.0, 0.0, 0.0]  # t, v, t*t, t*v with t relative to _origin
        self._adds = 0

    def add(self, at: datetime, voltage: float | None) -> None:
        """Record one sample; None, non-finite values and time going backwards are skipped."""
        if voltage is None or not math.isfinite(voltage):
            return
        t = at.timestamp()
        if self._points and t < self._points[-1][0]:
            return
        if not self._points:
            self._origin = t
        self._points.append((t, float(voltage)))
        self._account(t, float(voltage), 1.0)
        while len(self._points) > self._max_points or t - self._points[0][0] > self._window:
            old_t, old_v = self._points.popleft()
            self._account(old_t, old_v, -1.0)
        self._adds += 1
        if self._adds % self._REBUILD_EVERY == 0:
            self._rebuild()

    def backfill(self, samples: Iterable[tuple[datetime, float | None]]) -> int:
        """Insert earlier samples (a device's stored history) in time order; how many.

        Samples at a time already held, older than the window before the newest sample,
        None or not finite are skipped; the bounds of ``add`` hold afterwards.
        """
        held = dict(self._points)
        newest = self._points[-1][0] if self._points else None
        added = 0
        for at, voltage in samples:
            if voltage is None or not math.isfinite(voltage):
                continue
            t = at.timestamp()
            if t in held or (newest is not None and newest - t > self._window):
                continue
            held[t] = float(voltage)
            added += 1
        if added:
            points = sorted(held.items())
            last = points[-1][0]
            self._points = deque(
                p for p in points[-self._max_points:] if last - p[0] <= self._window
            )
            self._rebuild()
        return added

    def _account(self, t: float, v: float, sign: float) -> None:
        x = t - self._origin
        sums = self._sums
        sums[0] += sign * x
        sums[1] += sign * v
        sums[2] += sign * x * x
        sums[3] += sign * x * v

    def _rebuild(self) -> None:
        self._origin = self._points[0][0] if self._points else 0.0
        self._sums = [0.0, 0.0, 0.0, 0.0]
        for t, v in self._points:
            self._account(t, v, 1.0)

    @property
    def samples(self) -> list[tuple[float, float]]:
        """The (Unix time, volts) samples in the window, oldest first."""
        return list(self._points)

    def slope_per_hour(self) -> float | None:
        """dV/dt in volts per hour, or None while there is too little data."""
        n = len(self._points)
        if n < self._min_points or self._points[-1][0] - self._points[0][0] < self._min_span:
            return None
        st, sv, stt, stv = self._sums
        var = stt - st * st / n
        if var <= 1e-9:
            return None
        return (stv - st * sv / n) / var * 3600.0


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


class Trend(StrEnum):
    """What the battery is doing, judged from its current or its voltage slope."""

    CHARGING = "charging"
    DISCHARGING = "discharging"
    IDLE = "idle"


IDLE_CURRENT_A = 0.1
"""|current| in A under which a battery counts as idle (a monitor's own draw, noise)."""

_STATE_TRENDS = {"charging": Trend.CHARGING, "discharging": Trend.DISCHARGING,
                 "idle": Trend.IDLE}


def classify_trend(
    current: float | None,
    slope_per_hour: float | None,
    idle_slope: float,
    state: str | None = None,
) -> Trend | None:
    """Charging / discharging / idle; None while nothing tells.

    A measured current decides first (positive charges); then the monitor's own state
    word (charging, discharging, idle); then the voltage slope in V/h against
    ``idle_slope``.
    """
    if current is not None and math.isfinite(current):
        if current > IDLE_CURRENT_A:
            return Trend.CHARGING
        if current < -IDLE_CURRENT_A:
            return Trend.DISCHARGING
        return Trend.IDLE
    if state is not None and str(state) in _STATE_TRENDS:
        return _STATE_TRENDS[str(state)]
    if slope_per_hour is None:
        return None
    if slope_per_hour > idle_slope:
        return Trend.CHARGING
    if slope_per_hour < -idle_slope:
        return Trend.DISCHARGING
    return Trend.IDLE


MAX_TIME_TO_LOW_H = 24.0 * 30
"""Beyond a month the projection says nothing useful: no figure then."""


def hours_to_threshold(voltage: float | None, slope_per_hour: float | None,
                       threshold: float | None) -> float | None:
    """Hours until a falling voltage reaches ``threshold`` at the current slope.

    None unless the voltage is above the threshold and falling; 0 once it is at or below.
    """
    if voltage is None or slope_per_hour is None or threshold is None:
        return None
    if voltage <= threshold:
        return 0.0
    if slope_per_hour >= 0:
        return None
    hours = (voltage - threshold) / -slope_per_hour
    return hours if hours <= MAX_TIME_TO_LOW_H else None
