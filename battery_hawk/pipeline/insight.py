"""Pipeline stage: enrich a reading with insight (trend, SoC estimate, link quality)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import datetime

from battery_hawk.insight.device import DeviceInsight, InsightSettings
from battery_hawk.insight.quality import LinkReport
from battery_hawk.pipeline.base import ProcessedReading

__all__ = ["InsightStage"]

SettingsFor = Callable[[str], InsightSettings | None]
"""A device's insight settings by device_id; None switches insight off for it."""


class InsightStage:
    """Keeps one DeviceInsight per device and adds its Insight to each item.

    Failed reads never reach the pipeline (there is no reading); the App reports them
    with ``failure`` so the link figures count them.
    """

    def __init__(self, settings_for: SettingsFor) -> None:
        self._settings_for = settings_for
        self._devices: dict[str, DeviceInsight | None] = {}

    def _device(self, device_id: str) -> DeviceInsight | None:
        if device_id not in self._devices:
            settings = self._settings_for(device_id)
            self._devices[device_id] = None if settings is None else DeviceInsight(settings)
        return self._devices[device_id]

    async def handle(self, item: ProcessedReading) -> ProcessedReading:
        device = self._device(item.device_id)
        if device is None:
            return item
        return dataclasses.replace(item, insight=device.observe(item.reading))

    def start(self, device_id: str, at: float) -> None:
        """A device is watched from Unix time ``at``: readings are due from then on."""
        device = self._device(device_id)
        if device is not None:
            device.link.start(at)

    def failure(self, device_id: str, at: float) -> None:
        """A read of the device failed at Unix time ``at``."""
        device = self._device(device_id)
        if device is not None:
            device.failure(at)

    def link(self, device_id: str, now: float) -> LinkReport | None:
        """The device's link figures for the window ending at ``now``."""
        device = self._device(device_id)
        return None if device is None else device.link.report(now)

    def voltage_history(self, device_id: str) -> list[tuple[float, float]]:
        """(Unix time, volts) of the last hour, oldest first."""
        device = self._devices.get(device_id)
        return [] if device is None else device.voltage.samples

    def backfill(self, device_id: str, samples: Iterable[tuple[datetime, float | None]]) -> int:
        """Earlier (time, volts) samples, e.g. from a device's memory: the sparkline and
        trend get them in time order. How many were taken."""
        device = self._devices.get(device_id)
        return 0 if device is None else device.voltage.backfill(samples)

    def forget(self, device_id: str) -> None:
        self._devices.pop(device_id, None)
