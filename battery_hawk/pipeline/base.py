"""What travels through the reading pipeline, and what a stage is.

A coordinator produces a DeviceReading; the App wraps it in a ProcessedReading and hands it
to each stage in turn. A stage returns the item it was given, or a copy with what it
learnt added (insight, alert state); it never calls the stage before or after it. Only the
wiring in ``battery_hawk.app`` knows the order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from battery_hawk.insight.alerts import AlertChange, AlertKind, AlertStatus
from battery_hawk.insight.device import Insight
from battery_hawk.models import DeviceReading

__all__ = ["Pipeline", "ProcessedReading", "PublishFn", "Stage"]

PublishFn = Callable[[str, object, bool], Awaitable[None]]
"""Publishes (topic, payload, retain); the App's bound MQTT publish."""

_EMPTY: Mapping[AlertKind, AlertStatus] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProcessedReading:
    """One reading and what the stages before learnt about it.

    ``insight`` is what the device's recent readings say; ``alerts`` every alert kind of
    the device (configured, and for a field the device reports) with its state after
    this reading; ``alert_changes`` the kinds that raised or cleared because of it.
    """

    reading: DeviceReading
    insight: Insight | None = None
    alerts: Mapping[AlertKind, AlertStatus] = field(default_factory=lambda: _EMPTY)
    alert_changes: tuple[AlertChange, ...] = ()

    @property
    def device_id(self) -> str:
        return self.reading.device.device_id


class Stage(Protocol):
    """One step a reading takes; returns the (possibly enriched) item for the next step."""

    async def handle(self, item: ProcessedReading) -> ProcessedReading: ...


@runtime_checkable
class ForgetsDevices(Protocol):
    """A stage that keeps per-device state drops it when the device leaves the config."""

    def forget(self, device_id: str) -> None: ...


class Pipeline:
    """Runs a reading through its stages in the order given; the wiring owns that order."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self._stages = tuple(stages)

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self._stages

    async def process(self, reading: DeviceReading) -> ProcessedReading:
        """Hand one reading to every stage; an exception stops the chain and propagates."""
        item = ProcessedReading(reading)
        for stage in self._stages:
            item = await stage.handle(item)
        return item

    def forget(self, device_id: str) -> None:
        """Drop a device's state in every stage that keeps some."""
        for stage in self._stages:
            if isinstance(stage, ForgetsDevices):
                stage.forget(device_id)
