"""Output of the publish stage: every reading as an event on ``P/device/D/readings``.

``state`` is retained and superseded (a backlog keeps only the newest; Home Assistant
never sees old values replayed as new). ``readings`` carries the same payload, with its
original timestamp and seq, for every reading, in order, at least once: a subscriber
that wants them all (InfluxDB, Node-RED) listens here.
"""

from __future__ import annotations

from collections.abc import Iterable

from battery_hawk.pipeline.base import ProcessedReading
from battery_hawk.pipeline.publish import Outgoing, StateDocument
from battery_hawk.publisher import Topics

__all__ = ["ReadingsOutput"]


class ReadingsOutput:
    """The state document (insight fields too), not retained, on the readings topic."""

    def __init__(self, topics: Topics, document: StateDocument | None = None) -> None:
        self._topics = topics
        self._document = document or StateDocument()

    def __call__(self, item: ProcessedReading) -> Iterable[Outgoing]:
        yield Outgoing(self._topics.device_readings(item.device_id), self._document(item),
                       False)
