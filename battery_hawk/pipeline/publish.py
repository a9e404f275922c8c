"""Pipeline stage: publish what a reading produced, through a list of outputs.

An output turns a ProcessedReading into messages; the stage publishes them in order. New
streams (another topic for the same reading) are a new output, not a change here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from battery_hawk.insight.alerts import alert_payload, alert_state_payload
from battery_hawk.pipeline.base import ForgetsDevices, ProcessedReading, PublishFn
from battery_hawk.publisher import Topics, state_payload

__all__ = ["AlertEvents", "AlertState", "Outgoing", "Output", "PublishStage", "StateOutput"]


class Outgoing(NamedTuple):
    """One message to publish."""

    topic: str
    payload: bytes
    retain: bool


Output = Callable[[ProcessedReading], Iterable[Outgoing]]
"""Messages for one reading; may keep per-device state (then it also has ``forget``)."""


class StateOutput:
    """The retained state document on ``P/device/D/state``."""

    def __init__(self, topics: Topics) -> None:
        self._topics = topics

    def __call__(self, item: ProcessedReading) -> Iterable[Outgoing]:
        yield Outgoing(self._topics.device_state(item.device_id), state_payload(item.reading),
                       True)


class AlertEvents:
    """One non-retained event on ``P/device/D/alert`` per alert that raised or cleared."""

    def __init__(self, topics: Topics) -> None:
        self._topics = topics

    def __call__(self, item: ProcessedReading) -> Iterable[Outgoing]:
        for change in item.alert_changes:
            yield Outgoing(self._topics.device_alert(item.device_id),
                           alert_payload(item.device_id, change, item.reading.timestamp), False)


class AlertState:
    """The retained state of every alert kind on ``P/device/D/alerts``.

    Sent on a device's first reading since start (so HA's binary sensors have a state) and
    on every transition after that.
    """

    def __init__(self, topics: Topics) -> None:
        self._topics = topics
        self._sent: set[str] = set()

    def __call__(self, item: ProcessedReading) -> Iterable[Outgoing]:
        did = item.device_id
        if not item.alert_changes and did in self._sent:
            return
        self._sent.add(did)
        yield Outgoing(self._topics.device_alerts(did),
                       alert_state_payload(did, item.alerts, item.reading.timestamp), True)

    def forget(self, device_id: str) -> None:
        self._sent.discard(device_id)


class PublishStage:
    """Publishes every output's messages for a reading, outputs in the order given."""

    def __init__(self, publish: PublishFn, outputs: Sequence[Output]) -> None:
        self._publish = publish
        self._outputs = list(outputs)

    def add_output(self, output: Output) -> None:
        """Append an output; its messages follow those of the outputs already there."""
        self._outputs.append(output)

    async def handle(self, item: ProcessedReading) -> ProcessedReading:
        for output in self._outputs:
            for message in output(item):
                await self._publish(message.topic, message.payload, message.retain)
        return item

    def forget(self, device_id: str) -> None:
        for output in self._outputs:
            if isinstance(output, ForgetsDevices):
                output.forget(device_id)
