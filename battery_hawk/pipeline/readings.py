"""Output of the publish stage: every reading as an event on ``P/device/D/readings``.

``state`` is retained and superseded (a backlog keeps only the newest; Home Assistant
never sees old values replayed as new). ``readings`` carries the same payload, with its
original timestamp and seq, for every reading, in order, at least once: a subscriber
that wants them all (InfluxDB, Node-RED) listens here.
"""

from __future__ import annotations

from collections.abc import Iterable

from battery_hawk.pipeline.base import ProcessedReading
from battery_hawk.pipeline.publish import Outgoing
from battery_hawk.publisher import Topics, state_payload

__all__ = ["ReadingsOutput"]


class ReadingsOutput:
    """The state document (insight fields too), not retained, on the readings topic."""

    def __init__(self, topics: Topics) -> None:
        self._topics = topics

    def __call__(self, item: ProcessedReading) -> Iterable[Outgoing]:
        extra = None if item.insight is None else item.insight.payload_fields()
        yield Outgoing(self._topics.device_readings(item.device_id),
                       state_payload(item.reading, extra), False)
