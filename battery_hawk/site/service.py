"""Carries a gateway's Ownership over MQTT: subscriptions, the tick loop, callbacks.

The only part of ``battery_hawk.site`` that does I/O. It reports every ``lease / 3`` s,
publishes what :meth:`Ownership.due` says, feeds it every site message in the order the
broker delivers them, and tells the App when this gateway gains or loses a device.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from battery_hawk.errors import PayloadError
from battery_hawk.mqtt import MessageCallback
from battery_hawk.site.messages import (
    SiteTopics,
    decode_lease,
    decode_report,
    encode_lease,
    encode_report,
)
from battery_hawk.site.ownership import LeaseMessage, Ownership

__all__ = ["SiteBroker", "SiteService"]

_log = logging.getLogger(__name__)

OnChange = Callable[[str, bool], Awaitable[None]]
"""Called with (device_id, owned) when this gateway gains (True) or loses a device."""


class SiteBroker(Protocol):
    """What the service needs of the MQTT interface."""

    async def publish(self, topic: str, payload: object, qos: int | None = None,
                      retain: bool = False) -> None: ...

    async def subscribe(self, topic_filter: str, callback: MessageCallback,
                        qos: int = 1) -> None: ...


class SiteService:
    """One gateway's part in its site; see battery_hawk.site.ownership for the protocol."""

    def __init__(self, ownership: Ownership, topics: SiteTopics, broker: SiteBroker, *,
                 is_connected: Callable[[], bool], on_change: OnChange,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ownership = ownership
        self.topics = topics
        self._broker = broker
        self._is_connected = is_connected
        self._on_change = on_change
        self._clock = clock
        self._owned: set[str] = set()
        self._lock = asyncio.Lock()  # one ownership diff at a time
        self._last_report = -1e18
        self._stopped = False

    @property
    def lease(self) -> float:
        return self.ownership.lease

    def owns(self, device_id: str) -> bool:
        return self.ownership.owns(device_id, self._clock())

    def heard(self, device_id: str, rssi: float | None) -> None:
        self.ownership.heard(device_id, rssi, self._clock())

    async def start(self) -> None:
        """Subscribe to reports, leases and gateway statuses (kept across reconnects)."""
        await self._broker.subscribe(self.topics.all_leases, self._on_lease)
        await self._broker.subscribe(self.topics.all_hears, self._on_report)
        await self._broker.subscribe(self.topics.all_statuses, self._on_status)

    def session_started(self) -> None:
        """Connected hook: a new broker session (views may need to be learnt again)."""
        self.ownership.connected(self._clock())

    async def run(self) -> None:
        """Tick every sixth of a lease: report, claim, renew, release."""
        while True:
            await self.tick()
            await asyncio.sleep(self.lease / 6)

    async def tick(self) -> None:
        now = self._clock()
        if not self._is_connected():
            self.ownership.disconnected(now)
        elif self.ownership.is_connected and now - self._last_report >= self.lease / 3:
            self._last_report = now
            report = self.ownership.report(now)
            await self._broker.publish(self.topics.hears(report.gateway),
                                       encode_report(report, datetime.now(UTC)))
        if not self._stopped:
            for message in self.ownership.due(now):
                await self._say(message)
        await self._update()

    async def stop(self) -> None:
        """Release every lease held, so other gateways take over without waiting."""
        self._stopped = True
        for message in self.ownership.release_all(self._clock()):
            await self._say(message)
        await self._update()

    async def _say(self, message: LeaseMessage) -> None:
        _log.debug("site: %s %s (term %d)", message.action, message.device_id, message.term)
        await self._broker.publish(self.topics.lease(message.device_id),
                                   encode_lease(message, datetime.now(UTC)))

    async def _update(self) -> None:
        """Tell the App about devices gained and lost since the last call."""
        async with self._lock:
            now_owned = self.ownership.owned(self._clock())
            gained, lost = now_owned - self._owned, self._owned - now_owned
            self._owned = now_owned
        for did in sorted(lost):
            _log.info("site: %s is no longer read here (owner now %s)", did,
                      self.ownership.owner(did) or "none")
            await self._on_change(did, False)
        for did in sorted(gained):
            _log.info("site: %s is read here now", did)
            await self._on_change(did, True)

    async def _on_lease(self, topic: str, payload: bytes) -> None:
        try:
            message = decode_lease(self.topics.last_level(topic), payload)
        except PayloadError as exc:
            _log.debug("site: ignoring %s: %s", topic, exc)
            return
        self.ownership.on_lease(message, self._clock())
        await self._update()

    async def _on_report(self, topic: str, payload: bytes) -> None:
        try:
            report = decode_report(payload)
        except PayloadError as exc:
            _log.debug("site: ignoring %s: %s", topic, exc)
            return
        self.ownership.on_report(report, self._clock())

    async def _on_status(self, topic: str, payload: bytes) -> None:
        online = payload.strip() == b"online"
        self.ownership.on_status(self.topics.status_gateway(topic), online, self._clock())
