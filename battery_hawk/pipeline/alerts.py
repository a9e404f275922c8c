"""Pipeline stage: evaluate a device's alerts on each reading (state only, no publishing)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from battery_hawk.insight.alerts import (
    AlertChange,
    AlertEvaluator,
    AlertKind,
    AlertStatus,
    AlertThresholds,
)
from battery_hawk.insight.device import Insight
from battery_hawk.insight.quality import LinkReport
from battery_hawk.insight.trends import Trend
from battery_hawk.pipeline.base import ProcessedReading
from battery_hawk.storage import Announcements

__all__ = ["AlertStage", "ThresholdsFor"]

_log = logging.getLogger(__name__)

ThresholdsFor = Callable[[str], AlertThresholds | None]
"""A device's alert thresholds by device_id; None for a device without alerts."""

# The signal each kind needs before the device gets that alert at all: a BM2 (voltage
# only) never gets a temperature alert. Link and staleness alerts need no field.
_NEEDS: Mapping[AlertKind, str | None] = {
    AlertKind.LOW_VOLTAGE: "voltage",
    AlertKind.LOW_SOC: "soc",
    AlertKind.HIGH_TEMPERATURE: "temperature",
    AlertKind.LOW_TEMPERATURE: "temperature",
    AlertKind.STALE: None,
    AlertKind.POOR_CONNECTION: None,
    AlertKind.HIGH_ERROR_RATE: None,
}


def _link_signals(link: LinkReport | None) -> dict[str, float | None]:
    if link is None:
        return {}
    error_rate = link.error_rate
    return {
        "quality": None if link.quality is None else float(link.quality),
        "error_rate": None if error_rate is None else error_rate * 100.0,
    }


def reading_signals(item: ProcessedReading) -> tuple[dict[str, float | None], set[AlertKind]]:
    """The signals one reading gives, and the kinds it releases (pure)."""
    reading = item.reading.reading
    insight: Insight | None = item.insight
    signals: dict[str, float | None] = dict(reading.measurements())
    released: set[AlertKind] = set()
    if reading.soc is None and insight is not None and insight.soc_estimated is not None:
        signals["soc"] = insight.soc_estimated
    if reading.temperature is not None:
        signals["charging_temperature"] = reading.temperature
        if insight is None or insight.trend is not Trend.CHARGING:
            released.add(AlertKind.LOW_TEMPERATURE)
    signals["silent_s"] = 0.0
    signals.update(_link_signals(None if insight is None else insight.link))
    return signals, released


class AlertStage:
    """Keeps one AlertEvaluator per device; adds the alert state and transitions to the item.

    Active alerts are remembered in ``announced`` so a restart does not raise them again.
    A transition is logged once: raised as a warning, cleared as info. Between readings
    ``check`` evaluates the alerts that need no reading (stale, link quality, error rate).
    """

    def __init__(self, thresholds_for: ThresholdsFor, announced: Announcements) -> None:
        self._thresholds_for = thresholds_for
        self._announced = announced
        self._evaluators: dict[str, AlertEvaluator | None] = {}
        self._seen: dict[str, set[str]] = {}  # signals a device has reported

    def _evaluator(self, device_id: str) -> AlertEvaluator | None:
        if device_id not in self._evaluators:
            thresholds = self._thresholds_for(device_id)
            self._evaluators[device_id] = None if thresholds is None else AlertEvaluator(
                thresholds, active=self._announced.get(device_id).active)
        return self._evaluators[device_id]

    def status(self, device_id: str) -> dict[AlertKind, AlertStatus]:
        """The device's alert kinds that apply to it, with their state."""
        evaluator = self._evaluators.get(device_id)
        if evaluator is None:
            return {}
        seen = self._seen.get(device_id, set())
        return {kind: s for kind, s in evaluator.status().items()
                if s.active or (need := _NEEDS[kind]) is None or need in seen}

    async def handle(self, item: ProcessedReading) -> ProcessedReading:
        evaluator = self._evaluator(item.device_id)
        if evaluator is None:
            return item
        signals, released = reading_signals(item)
        self._seen.setdefault(item.device_id, set()).update(
            k for k, v in signals.items() if v is not None)
        changes = self._apply(item.device_id, item.reading.device.name, evaluator,
                              evaluator.evaluate_signals(signals, item.reading.timestamp,
                                                         released))
        return dataclasses.replace(item, alerts=self.status(item.device_id),
                                   alert_changes=tuple(changes))

    def check(self, device_id: str, name: str, now: datetime, silent_s: float,
              link: LinkReport | None) -> list[AlertChange]:
        """Evaluate the alerts that need no reading: stale, poor_connection, high_error_rate."""
        evaluator = self._evaluator(device_id)
        if evaluator is None:
            return []
        signals = {"silent_s": silent_s, **_link_signals(link)}
        return self._apply(device_id, name, evaluator, evaluator.evaluate_signals(signals, now))

    def _apply(self, device_id: str, name: str, evaluator: AlertEvaluator,
               changes: list[AlertChange]) -> list[AlertChange]:
        if changes:
            self._announced.set_active(
                device_id, (str(kind) for kind, s in evaluator.status().items() if s.active))
        for change in changes:
            log = _log.warning if change.active else _log.info
            log("%s: %s %s (value %s, threshold %s)", name, change.kind,
                "raised" if change.active else "cleared", change.value, change.threshold)
        return changes

    def forget(self, device_id: str) -> None:
        self._evaluators.pop(device_id, None)
        self._seen.pop(device_id, None)
