"""Threshold alerts with hysteresis: a reading in, alert transitions out (pure).

A low alert (low_voltage, low_soc) raises when the value is at or below its threshold and
clears only once the value is back at or above threshold + band; a high alert
(high_temperature) raises at or above its threshold and clears at or below threshold - band.
Between the two edges the alert keeps its state, so a value hovering at the threshold
(measurement noise, a load switching on and off) yields one alert, not a stream of them.

Default bands: 0.1 V, 2 percentage points of SoC, 2 °C; the voltage band is about twice the
noise of a 12 V monitor at rest. ``hold`` (seconds, default 0) additionally requires a
measured condition (voltage, SoC, temperature) to persist before an alert raises, e.g. to
ignore a starter battery's cranking dip; clearing never waits.

Besides the measurements, alerts watch signals the daemon derives (see ``Signals``):
``low_temperature`` is the temperature while charging (charging a lithium battery below
0 °C plates lithium; when charging stops the alert clears), ``stale`` the seconds since the
last reading against the offline period, ``poor_connection`` the link grade (raised at
POOR, cleared at GOOD), ``high_error_rate`` the share of failed reads in % (band 5 points).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from battery_hawk.models import Reading
from battery_hawk.publisher import format_timestamp

__all__ = [
    "AlertChange",
    "AlertEvaluator",
    "AlertKind",
    "AlertStatus",
    "AlertThresholds",
    "Signals",
    "alert_payload",
    "alert_state_payload",
]


class AlertKind(StrEnum):
    """The alerts battery-hawk knows; the value is the config key and the MQTT `kind`."""

    LOW_VOLTAGE = "low_voltage"
    LOW_SOC = "low_soc"
    HIGH_TEMPERATURE = "high_temperature"
    LOW_TEMPERATURE = "low_temperature"
    STALE = "stale"
    POOR_CONNECTION = "poor_connection"
    HIGH_ERROR_RATE = "high_error_rate"


# kind -> (signal, True if the alert fires below the threshold, band attribute or None)
_RULES: Mapping[AlertKind, tuple[str, bool, str | None]] = {
    AlertKind.LOW_VOLTAGE: ("voltage", True, "voltage_band"),
    AlertKind.LOW_SOC: ("soc", True, "soc_band"),
    AlertKind.HIGH_TEMPERATURE: ("temperature", False, "temperature_band"),
    AlertKind.LOW_TEMPERATURE: ("charging_temperature", True, "temperature_band"),
    AlertKind.STALE: ("silent_s", False, None),
    AlertKind.POOR_CONNECTION: ("quality", True, None),
    AlertKind.HIGH_ERROR_RATE: ("error_rate", False, None),
}
_HELD = frozenset({AlertKind.LOW_VOLTAGE, AlertKind.LOW_SOC, AlertKind.HIGH_TEMPERATURE,
                   AlertKind.LOW_TEMPERATURE})
_FIXED_BANDS: Mapping[AlertKind, float] = {
    AlertKind.STALE: 0.0,
    AlertKind.POOR_CONNECTION: 1.0,  # raised at POOR (1), cleared at GOOD (2)
    AlertKind.HIGH_ERROR_RATE: 5.0,
}
POOR_CONNECTION_THRESHOLD = 1.0  # Quality.POOR

Signals = Mapping[str, float | None]
"""Signal name -> value: the Reading fields, plus charging_temperature (°C, None when not
charging), silent_s (s since the last reading), quality (0 CRITICAL .. 3 EXCELLENT) and
error_rate (% of failed reads). A missing or None signal leaves its alerts as they are."""


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """Per-device thresholds; None switches that alert off. Bands are in the field's unit."""

    low_voltage: float | None = None
    low_soc: float | None = None
    high_temperature: float | None = None
    voltage_band: float = 0.1
    soc_band: float = 2.0
    temperature_band: float = 2.0
    hold: float = 0.0
    low_temperature: float | None = None
    stale: float | None = None  # seconds without a reading
    poor_connection: bool = False
    high_error_rate: float | None = None  # % of failed reads

    def __post_init__(self) -> None:
        for name in ("voltage_band", "soc_band", "temperature_band", "hold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def kinds(self) -> tuple[AlertKind, ...]:
        """The alert kinds that have a threshold, in a stable order."""
        return tuple(kind for kind in AlertKind if self.threshold(kind) is not None)

    def threshold(self, kind: AlertKind) -> float | None:
        if kind is AlertKind.POOR_CONNECTION:
            return POOR_CONNECTION_THRESHOLD if self.poor_connection else None
        value: float | None = getattr(self, str(kind))
        return value

    def band(self, kind: AlertKind) -> float:
        _, _, attribute = _RULES[kind]
        if attribute is None:
            return _FIXED_BANDS[kind]
        band: float = getattr(self, attribute)
        return band


@dataclass(frozen=True, slots=True)
class AlertChange:
    """An alert that just raised (active) or cleared, with the value that caused it."""

    kind: AlertKind
    active: bool
    value: float
    threshold: float


@dataclass(frozen=True, slots=True)
class AlertStatus:
    """The current state of one alert kind of one device."""

    active: bool
    threshold: float
    value: float | None = None
    since: datetime | None = None


class AlertEvaluator:
    """Tracks the alerts of one device across readings; reports only transitions."""

    def __init__(self, thresholds: AlertThresholds, active: Iterable[str] = ()) -> None:
        """`active` seeds kinds already raised (e.g. from the retained alerts topic)."""
        self._thresholds = thresholds
        seeded = {AlertKind(k) for k in active}
        self._status: dict[AlertKind, AlertStatus] = {}
        self._pending: dict[AlertKind, datetime] = {}
        # kind -> (signal, fires low, band, hold): looked up once, not per reading
        self._rules: dict[AlertKind, tuple[str, bool, float, float]] = {}
        for kind in thresholds.kinds():
            threshold = thresholds.threshold(kind)
            if threshold is not None:
                self._status[kind] = AlertStatus(active=kind in seeded, threshold=threshold)
                signal, low, _ = _RULES[kind]
                self._rules[kind] = (signal, low, thresholds.band(kind),
                                     thresholds.hold if kind in _HELD else 0.0)

    @property
    def thresholds(self) -> AlertThresholds:
        return self._thresholds

    def status(self) -> Mapping[AlertKind, AlertStatus]:
        """Every configured kind with its current state (read-only view)."""
        return MappingProxyType(self._status)

    def evaluate(self, reading: Reading, now: datetime) -> list[AlertChange]:
        """Feed one reading; returns the alerts that raised or cleared because of it."""
        return self.evaluate_signals(reading.measurements(), now)

    def evaluate_signals(self, signals: Signals, now: datetime,
                         released: Iterable[AlertKind] = ()) -> list[AlertChange]:
        """Feed derived signals; the alerts that raised or cleared because of them.

        A kind in ``released`` counts as not breached whatever its value (e.g.
        low_temperature once charging stopped): it clears at once if active.
        """
        free = set(released)
        changes: list[AlertChange] = []
        for kind, current in self._status.items():
            signal, low, band, hold = self._rules[kind]
            value = signals.get(signal)
            if value is None or not math.isfinite(value):
                continue  # not reported this time: nothing is known, keep the state
            value = float(value)
            threshold = current.threshold
            if current.active:
                cleared = kind in free or (
                    value >= threshold + band if low else value <= threshold - band)
                if cleared:
                    self._status[kind] = AlertStatus(False, threshold, value, now)
                    changes.append(AlertChange(kind, False, value, threshold))
                else:
                    self._status[kind] = AlertStatus(True, threshold, value, current.since)
                continue
            breached = kind not in free and (value <= threshold if low else value >= threshold)
            if not breached:
                self._pending.pop(kind, None)
                self._status[kind] = AlertStatus(False, threshold, value, current.since)
                continue
            first = self._pending.setdefault(kind, now)
            if (now - first).total_seconds() >= hold:
                self._pending.pop(kind, None)
                self._status[kind] = AlertStatus(True, threshold, value, now)
                changes.append(AlertChange(kind, True, value, threshold))
            else:
                self._status[kind] = AlertStatus(False, threshold, value, current.since)
        return changes


def _dumps(doc: Mapping[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def alert_payload(device_id: str, change: AlertChange, timestamp: datetime) -> bytes:
    """The non-retained alert event (docs/mqtt.md)."""
    return _dumps(
        {
            "device_id": device_id,
            "kind": str(change.kind),
            "active": change.active,
            "value": change.value,
            "threshold": change.threshold,
            "timestamp": format_timestamp(timestamp),
        }
    )


def alert_state_payload(
    device_id: str, status: Mapping[AlertKind, AlertStatus], timestamp: datetime
) -> bytes:
    """The retained current state of all of a device's alerts (`P/device/D/alerts`).

    ``{"device_id", "timestamp", "alerts": {kind: {"active", "value", "threshold", "since"}}}``;
    Home Assistant's alert binary sensors read their kind from it.
    """
    alerts = {
        str(kind): {
            "active": s.active,
            "value": s.value,
            "threshold": s.threshold,
            "since": None if s.since is None else format_timestamp(s.since),
        }
        for kind, s in status.items()
    }
    return _dumps(
        {"device_id": device_id, "timestamp": format_timestamp(timestamp), "alerts": alerts}
    )
