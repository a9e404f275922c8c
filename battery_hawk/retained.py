"""The retained topics the daemon owns, so it can say them again.

A broker restarted without persistence has forgotten every retained message; Home
Assistant's birth message (``homeassistant/status`` = ``online``) asks for discovery
again. Both are answered by re-publishing the current payload of every retained topic
the daemon published (availability, alerts, gateway status and discovery, the latest
state). The messages are state messages: the interface's queue replaces any older one
for the same topic, so a re-assertion coalesces with what is queued.

Births are debounced: the first re-announces at once, every birth within ``debounce``
seconds of that is folded into one more re-announcement at the end of the interval,
however many arrive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from battery_hawk.mqtt import encode_payload

__all__ = ["RetainedTopics"]

_log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]


class RetainedTopics:
    """Current payload of every retained topic published; re-asserts them on demand."""

    def __init__(self, publish: Publish, *, debounce: float = 5.0,
                 drained: Callable[[], Awaitable[object]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._publish = publish
        self._drained = drained
        self._debounce = debounce
        self._clock = clock
        self._current: dict[str, bytes] = {}
        self._last_birth: float | None = None
        self._pending: asyncio.Task[None] | None = None
        self._sessions = 0
        self.reassertions = 0  # rounds done (new sessions and births)
        self.births_answered = 0  # rounds done for Home Assistant's birth message
        self.births_received = 0  # birth messages seen, answered or folded

    def __len__(self) -> int:
        return len(self._current)

    def record(self, topic: str, payload: object) -> None:
        """Remember a retained publish; an empty payload (a removal) forgets the topic."""
        data = encode_payload(payload)
        if data:
            self._current[topic] = data
        else:
            self._current.pop(topic, None)

    def forget_where(self, predicate: Callable[[str], bool]) -> int:
        """Stop re-asserting the topics ``predicate`` picks (another gateway owns them now)."""
        gone = [topic for topic in self._current if predicate(topic)]
        for topic in gone:
            del self._current[topic]
        return len(gone)

    async def session_started(self) -> None:
        """Hook for every new broker session: re-assert all but on the first session.

        Everything published since start is queued for, or was sent on, the first one.
        The backlog goes first (``drained``): it is older, and without a spool a round
        of state must not push queued readings out of a small memory queue.
        """
        self._sessions += 1
        if self._sessions > 1:
            if self._drained is not None:
                await self._drained()
            await self.reassert()

    async def reassert(self) -> None:
        """Publish every remembered topic's current payload again (retained)."""
        self.reassertions += 1
        current = list(self._current.items())
        _log.info("re-asserting %d retained topic(s)", len(current))
        for topic, payload in current:
            await self._publish(topic, payload)

    def birth(self) -> None:
        """Home Assistant said online: re-announce now, or once at the end of the interval."""
        self.births_received += 1
        if self._pending is not None and not self._pending.done():
            return  # one is scheduled: this birth is folded into it
        now = self._clock()
        wait = 0.0
        if self._last_birth is not None and now - self._last_birth < self._debounce:
            wait = self._debounce - (now - self._last_birth)
        self._last_birth = now + wait
        self._pending = asyncio.create_task(self._after(wait), name="battery-hawk:birth")

    async def _after(self, wait: float) -> None:
        if wait:
            await asyncio.sleep(wait)
        _log.info("Home Assistant is online: re-sending discovery and state")
        self.births_answered += 1
        try:
            await self.reassert()
        except Exception:
            _log.exception("re-announcing to Home Assistant failed")

    async def close(self) -> None:
        """Cancel a scheduled re-announcement."""
        task, self._pending = self._pending, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
