"""Pipeline stage: evaluate a device's alerts on each reading (state only, no publishing)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from battery_hawk.insight.alerts import AlertEvaluator, AlertThresholds
from battery_hawk.pipeline.base import ProcessedReading
from battery_hawk.storage import Announcements

__all__ = ["AlertStage"]

_log = logging.getLogger(__name__)

ThresholdsFor = Callable[[str], AlertThresholds | None]
"""A device's alert thresholds by device_id; None for a device without alerts."""


class AlertStage:
    """Keeps one AlertEvaluator per device; adds the alert state and transitions to the item.

    Active alerts are remembered in ``announced`` so a restart does not raise them again.
    A transition is logged once: raised as a warning, cleared as info.
    """

    def __init__(self, thresholds_for: ThresholdsFor, announced: Announcements) -> None:
        self._thresholds_for = thresholds_for
        self._announced = announced
        self._evaluators: dict[str, AlertEvaluator | None] = {}

    def _evaluator(self, device_id: str) -> AlertEvaluator | None:
        if device_id not in self._evaluators:
            thresholds = self._thresholds_for(device_id)
            self._evaluators[device_id] = None if thresholds is None else AlertEvaluator(
                thresholds, active=self._announced.get(device_id).active)
        return self._evaluators[device_id]

    async def handle(self, item: ProcessedReading) -> ProcessedReading:
        dr = item.reading
        evaluator = self._evaluator(item.device_id)
        if evaluator is None:
            return item
        changes = evaluator.evaluate(dr.reading, dr.timestamp)
        status = evaluator.status()
        if changes:
            self._announced.set_active(item.device_id,
                                       (str(kind) for kind, s in status.items() if s.active))
        for change in changes:
            log = _log.warning if change.active else _log.info
            log("%s: %s %s (value %s, threshold %s)", dr.device.name, change.kind,
                "raised" if change.active else "cleared", change.value, change.threshold)
        return dataclasses.replace(item, alerts=dict(status), alert_changes=tuple(changes))

    def forget(self, device_id: str) -> None:
        self._evaluators.pop(device_id, None)
