"""Threshold alerts with hysteresis: a reading in, alert transitions out (pure).

A low alert (low_voltage, low_soc) raises when the value is at or below its threshold and
clears only once the value is back at or above threshold + band; a high alert
(high_temperature) raises at or above its threshold and clears at or below threshold - band.
Between the two edges the alert keeps its state, so a value hovering at the threshold
(measurement noise, a load switching on and off) yields one alert, not a stream of them.

Default bands: 0.1 V, 2 percentage points of SoC, 2 °C; the voltage band is about twice the
noise of a 12 V monitor at rest. ``hold`` (seconds, default 0) additionally requires the
condition to persist before an alert raises, e.g. to ignore a starter battery's cranking
dip; clearing never waits.
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
    "alert_payload",
    "alert_state_payload",
]


class AlertKind(StrEnum):
    """The alerts battery-hawk knows; the value is the config key and the MQTT `kind`."""

    LOW_VOLTAGE = "low_voltage"
    LOW_SOC = "low_soc"
    HIGH_TEMPERATURE = "high_temperature"


# kind -> (Reading field, True if the alert fires below the threshold)
_RULES: Mapping[AlertKind, tuple[str, bool]] = {
    AlertKind.LOW_VOLTAGE: ("voltage", True),
    AlertKind.LOW_SOC: ("soc", True),
    AlertKind.HIGH_TEMPERATURE: ("temperature", False),
}


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

    def __post_init__(self) -> None:
        for name in ("voltage_band", "soc_band", "temperature_band", "hold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def kinds(self) -> tuple[AlertKind, ...]:
        """The alert kinds that have a threshold, in a stable order."""
        return tuple(kind for kind in AlertKind if self.threshold(kind) is not None)

    def threshold(self, kind: AlertKind) -> float | None:
        value: float | None = getattr(self, str(kind))
        return value

    def band(self, kind: AlertKind) -> float:
        field, _ = _RULES[kind]
        band: float = getattr(self, f"{field}_band")
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
        for kind in thresholds.kinds():
            threshold = thresholds.threshold(kind)
            if threshold is not None:
                self._status[kind] = AlertStatus(active=kind in seeded, threshold=threshold)

    @property
    def thresholds(self) -> AlertThresholds:
        return self._thresholds

    def status(self) -> Mapping[AlertKind, AlertStatus]:
        """Every configured kind with its current state (read-only view)."""
        return MappingProxyType(self._status)

    def evaluate(self, reading: Reading, now: datetime) -> list[AlertChange]:
        """Feed one reading; returns the alerts that raised or cleared because of it."""
        changes: list[AlertChange] = []
        for kind, current in self._status.items():
            field, low = _RULES[kind]
            value = getattr(reading, field)
            if value is None or not math.isfinite(value):
                continue  # not reported this time: nothing is known, keep the state
            value = float(value)
            threshold = current.threshold
            band = self._thresholds.band(kind)
            if current.active:
                cleared = value >= threshold + band if low else value <= threshold - band
                if cleared:
                    self._status[kind] = AlertStatus(False, threshold, value, now)
                    changes.append(AlertChange(kind, False, value, threshold))
                else:
                    self._status[kind] = AlertStatus(True, threshold, value, current.since)
                continue
            breached = value <= threshold if low else value >= threshold
            if not breached:
                self._pending.pop(kind, None)
                self._status[kind] = AlertStatus(False, threshold, value, current.since)
                continue
            first = self._pending.setdefault(kind, now)
            if (now - first).total_seconds() >= self._thresholds.hold:
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
