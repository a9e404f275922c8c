"""Pipeline stage: count the reading and update the Prometheus series."""

from __future__ import annotations

from battery_hawk.http.metrics import Metrics
from battery_hawk.pipeline.base import ProcessedReading
from battery_hawk.runtime import GatewayStats

__all__ = ["MetricsStage"]


class MetricsStage:
    """Last in the chain: what reaches it has been published (or queued for MQTT)."""

    def __init__(self, metrics: Metrics, stats: GatewayStats) -> None:
        self._metrics = metrics
        self._stats = stats
        self._alert_kinds: dict[str, int] = {}  # kinds last exported per device

    def forget(self, device_id: str) -> None:
        self._alert_kinds.pop(device_id, None)

    async def handle(self, item: ProcessedReading) -> ProcessedReading:
        self._stats.readings += 1
        self._metrics.observe_reading(item.reading)
        if item.reading.radio is not None:
            self._metrics.observe_radio_reading(item.reading.radio)
        if item.insight is not None:
            link = item.insight.link
            self._metrics.observe_link(
                item.device_id, link.success_rate,
                None if link.quality is None else float(link.quality))
        if item.alerts and (item.alert_changes or self._alert_kinds.get(item.device_id)
                            != len(item.alerts)):
            self._alert_kinds[item.device_id] = len(item.alerts)
            self._metrics.set_alerts(item.device_id,
                                     {str(k): s.active for k, s in item.alerts.items()})
        return item
