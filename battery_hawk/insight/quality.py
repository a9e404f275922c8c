"""Connection quality of one device's link over a sliding window (pure).

Four figures, each graded, and the link is as good as its worst figure:

| figure | EXCELLENT | GOOD | POOR | else |
| --- | --- | --- | --- | --- |
| RSSI (dBm, passive devices) | >= -70 | >= -85 | >= -95 | CRITICAL |
| read success rate | >= 98 % | >= 90 % | >= 70 % | CRITICAL |
| read latency p50 (connect + exchange) | <= 3 s | <= 8 s | <= 15 s | CRITICAL |
| missed readings (of those due) | <= 5 % | <= 20 % | <= 50 % | CRITICAL |

RSSI bands follow the usual BLE rule of thumb (-70 dBm and better is a solid link, down
to about -85 dBm it works, below -95 dBm adverts are mostly lost). A figure without data
(no RSSI for a polled device, fewer than 3 attempts) does not count.

Missed readings are counted from the gaps between readings: a gap longer than the interval
plus a slack of half an interval and 2 s (a passive device can only emit on its next
advertisement, a polled one waits for the radio) misses one reading per further interval.
"""

from __future__ import annotations

import bisect
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
        grades.append(_grade_high(rssi, -70, -85, -95))
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
    received count as missed. Figures are kept as running counts and a sorted latency
    list, so adding an attempt and reporting cost little whatever the window holds.
    Memory is bounded by ``max_events``.
    """

    def __init__(self, interval: float, window_s: float = 3600.0, *,
                 max_events: int = 512) -> None:
        if interval <= 0 or window_s <= 0:
            raise ValueError("interval and window_s must be positive")
        self._interval = interval
        self._slack = interval / 2 + 2.0
        self._window = window_s
        self._max = max_events
        # (time, ok, latency or None, readings missed in the gap before it)
        self._events: deque[tuple[float, bool, float | None, int]] = deque()
        self._latencies: list[float] = []  # sorted, of the successes in the window
        self._rssi: deque[float] = deque(maxlen=5)
        self._attempts = 0
        self._oks = 0
        self._missed = 0
        self._first: float | None = None
        self._last_ok: float | None = None

    def start(self, at: float) -> None:
        """When the device started to be watched (readings are due from then on)."""
        if self._first is None:
            self._first = at

    def _gap_missed(self, before: float, after: float) -> int:
        gap = after - before - self._slack
        return int(gap // self._interval) if gap >= self._interval else 0

    def success(self, at: float, latency: float | None = None, rssi: float | None = None) -> None:
        self.start(at)
        previous = self._last_ok if self._last_ok is not None else self._first
        missed = self._gap_missed(previous, at) if previous is not None else 0
        self._last_ok = at
        self._append((at, True, latency, missed))
        if rssi is not None:
            self._rssi.append(float(rssi))

    def failure(self, at: float) -> None:
        self.start(at)
        self._append((at, False, None, 0))

    def _append(self, event: tuple[float, bool, float | None, int]) -> None:
        at, ok, latency, missed = event
        self._events.append(event)
        self._attempts += 1
        self._missed += missed
        if ok:
            self._oks += 1
            if latency is not None:
                bisect.insort(self._latencies, latency)
        while len(self._events) > self._max:
            self._drop()
        self._trim(at)

    def _drop(self) -> None:
        _, ok, latency, missed = self._events.popleft()
        self._attempts -= 1
        self._missed -= missed
        if ok:
            self._oks -= 1
            if latency is not None:
                index = bisect.bisect_left(self._latencies, latency)
                del self._latencies[index]

    def _trim(self, now: float) -> None:
        since = now - self._window
        while self._events and self._events[0][0] < since:
            self._drop()

    def report(self, now: float) -> LinkReport:
        """The figures and grade for the window ending at ``now``."""
        self._trim(now)
        attempts, oks, latencies = self._attempts, self._oks, self._latencies
        rate = oks / attempts if attempts >= MIN_ATTEMPTS else None
        p50 = _percentile(latencies, 0.5) if latencies else None
        p95 = _percentile(latencies, 0.95) if latencies else None
        rssi = sum(self._rssi) / len(self._rssi) if self._rssi else None
        missed, missed_ratio = 0, None
        if self._first is not None:
            last = self._last_ok if self._last_ok is not None else self._first
            missed = self._missed + self._gap_missed(max(last, now - self._window), now)
            due = oks + missed
            if due >= MIN_ATTEMPTS:
                missed_ratio = missed / due
        return LinkReport(
            attempts=attempts, successes=oks, success_rate=rate,
            latency_p50=p50, latency_p95=p95, rssi=rssi, missed=missed,
            missed_ratio=missed_ratio,
            quality=grade(rssi, rate, p50, missed_ratio),
        )
