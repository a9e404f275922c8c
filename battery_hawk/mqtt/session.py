"""An established connection as the tasks share it, and the subscription registry."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from .link import Link

__all__ = ["MessageCallback", "Session", "Subscriptions", "topic_matches"]

_LOG = logging.getLogger("battery_hawk.mqtt")

MessageCallback = Callable[[str, bytes], Awaitable[None] | None]


class Session:
    """One established connection; ``lose()`` marks it dead once, with a reason."""

    def __init__(self, link: Link, on_lost: Callable[[Session], None]) -> None:
        self.link = link
        self.lost = asyncio.Event()
        self.reason: str | None = None
        self.ready = False  # online published, subscriptions restored
        self._on_lost = on_lost

    def lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            self.lost.set()
            self._on_lost(self)


class Subscriptions:
    """Topic filters, their QoS and callbacks; they outlive every connection."""

    def __init__(self) -> None:
        self._filters: dict[str, tuple[int, list[MessageCallback]]] = {}

    def add(self, topic_filter: str, callback: MessageCallback, qos: int) -> int:
        """Register ``callback``; return the QoS to subscribe with (the highest asked)."""
        old_qos, callbacks = self._filters.get(topic_filter, (qos, []))
        callbacks.append(callback)
        self._filters[topic_filter] = (max(qos, old_qos), callbacks)
        return self._filters[topic_filter][0]

    def remove(self, topic_filter: str) -> bool:
        """Forget ``topic_filter``; True if it was registered."""
        return self._filters.pop(topic_filter, None) is not None

    def filters(self) -> list[tuple[str, int]]:
        """Every (topic filter, QoS), to restore after a reconnect."""
        return [(topic_filter, qos) for topic_filter, (qos, _) in self._filters.items()]

    async def dispatch(self, topic: str, payload: bytes) -> None:
        """Call every matching callback; a failing callback is logged, not propagated."""
        for topic_filter, (_, callbacks) in list(self._filters.items()):
            if not topic_matches(topic_filter, topic):
                continue
            for callback in list(callbacks):
                try:
                    result = callback(topic, payload)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    _LOG.exception("subscriber callback for %s failed", topic_filter)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic-filter matching (``+`` one level, ``#`` the rest, ``$`` topics apart)."""
    filter_parts = topic_filter.split("/")
    topic_parts = topic.split("/")
    if topic.startswith("$") and filter_parts[0] in ("+", "#"):
        return False
    for i, part in enumerate(filter_parts):
        if part == "#":
            return True
        if i >= len(topic_parts) or (part != "+" and part != topic_parts[i]):
            return False
    return len(filter_parts) == len(topic_parts)
