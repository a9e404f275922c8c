"""Connection quality of one device's link over a sliding window (pure).

Four figures, each graded, and the link is as good as its worst figure:

| figure | EXCELLENT | GOOD | POOR | else |
| --- | --- | --- | --- | --- |
| RSSI (dBm, passive devices) | >= -70 | >= -80 | >= -90 | CRITICAL |
| read success rate | >= 98 % | >= 90 % | >= 70 % | CRITICAL |
| read latency p50 (connect + exchange) | <= 3 s | <= 8 s | <= 15 s | CRITICAL |
| missed readings (of those due) | <= 5 % | <= 20 % | <= 50 % | CRITICAL |

RSSI bands follow the usual BLE rule of thumb (-70 dBm and better is a solid link, below
-90 dBm packets get lost). A figure without data (no RSSI for a polled device, fewer than
3 attempts) does not count.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["LinkReport", "LinkWindow", "Quality", "grade"]

MIN_ATTEMPTS = 3


class Quality(IntEnum):
    """Link grade; higher is better. ``str(q)`` is the upper-case name used in payloads."""

    CRITICAL = 0
    POOR = 1
    GOOD = 2
    EXCELLENT = 3

    def __str__(self) -> str:
        return self.name


def _grade_high(value: float, excellent: float, good: float, poor: float) -> Quality:
    if value >= excellent:
        return Quality.EXCELLENT
    if value >= good:
        return Quality.GOOD
    if value >= poor:
        return Quality.POOR
    return Quality.CRITICAL


def grade(
    rssi: float | None = None,
    success_rate: float | None = None,
    latency_s: float | None = None,
    missed_ratio: float | None = None,
) -> Quality | None:
    """The worst grade of the figures given; None when no figure is known."""
    grades: list[Quality] = []
    if rssi is not None:
        grades.append(_grade_high(rssi, -70, -80, -90))
    if success_rate is not None:
        grades.append(_grade_high(success_rate, 0.98, 0.90, 0.70))
    if latency_s is not None:
        grades.append(_grade_high(-latency_s, -3.0, -8.0, -15.0))
    if missed_ratio is not None:
        grades.append(_grade_high(-missed_ratio, -0.05, -0.20, -0.50))
    return min(grades) if grades else None


@dataclass(frozen=True, slots=True)
class LinkReport:
    """A device's link over the window; rates are 0..1, latencies in s, rssi in dBm."""

    attempts: int = 0
    successes: int = 0
    success_rate: float | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    rssi: float | None = None
    missed: int = 0
    missed_ratio: float | None = None
    quality: Quality | None = None

    @property
    def error_rate(self) -> float | None:
        return None if self.success_rate is None else 1.0 - self.success_rate


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


class LinkWindow:
    """Attempts of one device within ``window_s`` seconds; times are Unix seconds.

    ``interval`` is the device's reading interval: readings due in the window but not
    received count as missed. Memory is bounded by ``max_events``.
    """

    def __init__(self, interval: float, window_s: float = 3600.0, *,
                 max_events: int = 512) -> None:
        if interval <= 0 or window_s <= 0:
            raise ValueError("interval and window_s must be positive")
        self._interval = interval
        self._window = window_s
        # (time, ok, latency or None, rssi or None)
        self._events: deque[tuple[float, bool, float | None, float | None]] = deque(
            maxlen=max_events)
        self._first: float | None = None

    def start(self, at: float) -> None:
        """When the device started to be watched (readings are due from then on)."""
        if self._first is None:
            self._first = at

    def success(self, at: float, latency: float | None = None, rssi: float | None = None) -> None:
        self.start(at)
        self._events.append((at, True, latency, rssi))

    def failure(self, at: float) -> None:
        self.start(at)
        self._events.append((at, False, None, None))

    def report(self, now: float) -> LinkReport:
        """The figures and grade for the window ending at ``now``."""
        since = now - self._window
        while self._events and self._events[0][0] < since:
            self._events.popleft()
        events = self._events
        attempts = len(events)
        oks = [e for e in events if e[1]]
        latencies = sorted(e[2] for e in oks if e[2] is not None)
        rssis = [e[3] for e in oks[-5:] if e[3] is not None]
        rate = len(oks) / attempts if attempts >= MIN_ATTEMPTS else None
        p50 = _percentile(latencies, 0.5) if latencies else None
        p95 = _percentile(latencies, 0.95) if latencies else None
        rssi = sum(rssis) / len(rssis) if rssis else None
        missed, missed_ratio = 0, None
        if self._first is not None:
            span = now - max(since, self._first)
            due = int(span // self._interval)
            if due >= MIN_ATTEMPTS:
                missed = max(0, due - len(oks))
                missed_ratio = missed / due
        return LinkReport(
            attempts=attempts, successes=len(oks), success_rate=rate,
            latency_p50=p50, latency_p95=p95, rssi=rssi, missed=missed,
            missed_ratio=missed_ratio,
            quality=grade(rssi, rate, p50, missed_ratio),
        )
