"""Pipeline stage: publish what a reading produced, through a list of outputs.

An output turns a ProcessedReading into messages; the stage publishes them in order. New
streams (another topic for the same reading) are a new output, not a change here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol, runtime_checkable

from battery_hawk.insight.alerts import (
    AlertChange,
    AlertKind,
    AlertStatus,
    alert_payload,
    alert_state_payload,
)
from battery_hawk.pipeline.base import ForgetsDevices, ProcessedReading, PublishFn
from battery_hawk.publisher import Topics, state_payload

__all__ = [
    "AlertEvents",
    "AlertOutput",
    "AlertState",
    "Outgoing",
    "Output",
    "PublishStage",
    "StateDocument",
    "StateOutput",
]


class Outgoing(NamedTuple):
    """One message to publish."""

    topic: str
    payload: bytes
    retain: bool


Output = Callable[[ProcessedReading], Iterable[Outgoing]]
"""Messages for one reading; may keep per-device state (then it also has ``forget``)."""


@runtime_checkable
class AlertOutput(Protocol):
    """An output that also speaks for alert changes found between readings."""

    def alert_messages(self, device_id: str, alerts: Mapping[AlertKind, AlertStatus],
                       changes: Sequence[AlertChange], at: datetime) -> Iterable[Outgoing]: ...


class StateDocument:
    """The state document of a reading (measured and insight fields), made once per item.

    The state and readings outputs publish the same bytes; the last item's document is
    kept, so the second output of the same item does not build it again.
    """

    __slots__ = ("_item", "_payload")

    def __init__(self) -> None:
        self._item: ProcessedReading | None = None
        self._payload = b""

    def __call__(self, item: ProcessedReading) -> bytes:
        if item is not self._item:
            extra = None if item.insight is None else item.insight.payload_fields()
            self._payload = state_payload(item.reading, extra)
            self._item = item
        return self._payload


class StateOutput:
    """The retained state document on ``P/device/D/state``."""

    def __init__(self, topics: Topics, document: StateDocument | None = None) -> None:
        self._topics = topics
        self.document = document or StateDocument()

    def __call__(self, item: ProcessedReading) -> Iterable[Outgoing]:
        yield Outgoing(self._topics.device_state(item.device_id), self.document(item), True)


class AlertEvents:
    """One non-retained event on ``P/device/D/alert`` per alert that raised or cleared."""

    def __init__(self, topics: Topics) -> None:
        self._topics = topics

    def __call__(self, item: ProcessedReading) -> Iterable[Outgoing]:
        return self.alert_messages(item.device_id, item.alerts, item.alert_changes,
                                   item.reading.timestamp)

    def alert_messages(self, device_id: str, alerts: Mapping[AlertKind, AlertStatus],
                       changes: Sequence[AlertChange], at: datetime) -> Iterable[Outgoing]:
        for change in changes:
            yield Outgoing(self._topics.device_alert(device_id),
                           alert_payload(device_id, change, at), False)


class AlertState:
    """The retained state of every alert kind on ``P/device/D/alerts``.

    Sent on a device's first reading since start (so HA's binary sensors have a state) and
    on every transition after that.
    """

    def __init__(self, topics: Topics) -> None:
        self._topics = topics
        self._sent: set[str] = set()

    def __call__(self, item: ProcessedReading) -> Iterable[Outgoing]:
        return self.alert_messages(item.device_id, item.alerts, item.alert_changes,
                                   item.reading.timestamp)

    def alert_messages(self, device_id: str, alerts: Mapping[AlertKind, AlertStatus],
                       changes: Sequence[AlertChange], at: datetime) -> Iterable[Outgoing]:
        if not changes and device_id in self._sent:
            return
        self._sent.add(device_id)
        yield Outgoing(self._topics.device_alerts(device_id),
                       alert_state_payload(device_id, alerts, at), True)

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

    async def publish_alerts(self, device_id: str, alerts: Mapping[AlertKind, AlertStatus],
                             changes: Sequence[AlertChange], at: datetime) -> None:
        """Publish alert changes found between readings through the alert outputs."""
        for output in self._outputs:
            if isinstance(output, AlertOutput):
                for message in output.alert_messages(device_id, alerts, changes, at):
                    await self._publish(message.topic, message.payload, message.retain)

    def forget(self, device_id: str) -> None:
        for output in self._outputs:
            if isinstance(output, ForgetsDevices):
                output.forget(device_id)
