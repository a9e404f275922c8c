"""Pipeline stage: announce a device to Home Assistant when its set of entities changes."""

from __future__ import annotations

from collections.abc import Callable

from battery_hawk.models import DeviceInfo
from battery_hawk.pipeline.base import ProcessedReading, PublishFn
from battery_hawk.publisher import (
    DISCOVERABLE_FIELDS,
    Topics,
    discovery_messages,
    reported_fields,
)
from battery_hawk.storage import Announcements

__all__ = ["DiscoveryStage"]


class DiscoveryStage:
    """Sends retained discovery documents for the fields and alert kinds a device has.

    A device is announced on its first reading, again when a reading adds a field, when its
    alert kinds change (a kind switched off loses its binary sensor), or when its name,
    model or expire_after change. ``expire_after`` gives a device's expire_after seconds.
    """

    def __init__(
        self,
        topics: Topics,
        announced: Announcements,
        publish: PublishFn,
        expire_after: Callable[[str], int],
        *,
        gateway_availability: bool = True,
        attributes: Callable[[DeviceInfo], bool] = lambda _: False,
    ) -> None:
        self._attributes = attributes
        self._gateway_availability = gateway_availability
        self._topics = topics
        self._announced = announced
        self._publish = publish
        self._expire_after = expire_after
        self._last: dict[str, tuple[object, ...]] = {}  # what each device last brought

    async def handle(self, item: ProcessedReading) -> ProcessedReading:
        device = item.reading.device
        did = device.device_id
        kinds = tuple(str(k) for k in item.alerts)
        before = self._announced.get(did).alerts
        fields = reported_fields(item.reading)
        if item.insight is not None:
            derived = set(item.insight.entity_fields())
            fields = (*fields, *(f for f in DISCOVERABLE_FIELDS if f in derived))
        fingerprint = self.fingerprint(device)
        seen = (fields, kinds, fingerprint)
        if self._last.get(did) == seen:
            return item  # nothing new since the last reading: the common case
        self._last[did] = seen
        if self._announced.update(did, fields, kinds, fingerprint):
            await self.announce(device)
            node = self._topics.device_identifier(did)
            for kind in set(before) - set(kinds):  # an alert switched off loses its entity
                await self._publish(self._topics.discovery("binary_sensor", node,
                                                           f"alert_{kind}"), b"", True)
        return item

    def forget(self, device_id: str) -> None:
        self._last.pop(device_id, None)

    def fingerprint(self, device: DeviceInfo) -> str:
        """What else discovery documents carry: a change re-announces the device."""
        return f"{device.name}|{device.model}|{self._expire_after(device.device_id)}"

    async def announce(self, device: DeviceInfo) -> None:
        """(Re)send every discovery document of a device already known to the store."""
        known = self._announced.get(device.device_id)
        for topic, payload in discovery_messages(device, known.fields, self._topics,
                                                 self._expire_after(device.device_id),
                                                 known.alerts,
                                                 gateway_availability=self._gateway_availability,
                                                 attributes=self._attributes(device)):
            await self._publish(topic, payload, True)
