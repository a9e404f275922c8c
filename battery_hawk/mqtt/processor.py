"""The queue processor: drains the queue over the current connection, in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from .backlog import Backlog
from .backoff import ReconnectionConfig
from .link import LinkError
from .queue import QueuedMessage
from .session import Session
from .supervisor import raise_if_cancelled, stop_tasks

__all__ = ["Counters", "DeadLetterHook", "QueueProcessor"]

_LOG = logging.getLogger("battery_hawk.mqtt")

DeadLetterHook = Callable[[QueuedMessage, str], None]
Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]


@dataclass(slots=True)
class Counters:
    """The mutable counters behind MQTTStats."""

    connections: int = 0
    disconnections: int = 0
    published: int = 0
    queued: int = 0
    failed: int = 0
    dropped_retry: int = 0
    rejected: int = 0


class QueueProcessor:
    """Publishes from the queue head whenever a session is up; wakes on new messages."""

    def __init__(
        self,
        backlog: Backlog,
        config: ReconnectionConfig,
        counters: Counters,
        spawn: Spawn,
    ) -> None:
        self._backlog = backlog
        self._config = config
        self._counters = counters
        self._spawn = spawn

    async def run(self, next_session: Callable[[], Awaitable[Session]]) -> None:
        """Serve session after session until cancelled."""
        while True:
            session = await next_session()
            lost = False
            try:
                await self._drain(session)
                lost = True
            finally:
                self._recall(count_failure=lost)

    async def _drain(self, session: Session) -> None:
        """Publish from the queue head until the session is lost.

        Publishers start at one and one more is added per acknowledgement, up to
        max_in_flight (TCP slow start): after a reconnect the oldest message goes out
        alone first, so a message that makes the broker drop the link is the only one
        charged for it, and the window is wide again within a few round trips.
        """
        workers: set[asyncio.Task[None]] = set()

        def widen() -> None:
            if len(workers) < self._config.max_in_flight and not session.lost.is_set():
                workers.add(self._spawn(self._publisher(session, widen), "publisher"))

        widen()
        try:
            await session.lost.wait()
        finally:
            await stop_tasks(workers)

    async def _publisher(self, session: Session, widen: Callable[[], None]) -> None:
        backlog = self._backlog
        queue = backlog.queue
        link = session.link
        counters = self._counters
        while True:
            message = backlog.take()
            if message is None:
                await queue.wait_pending()  # set by put(): no polling
                continue
            try:
                await link.publish(message.topic, message.payload, message.qos, message.retain)
            except LinkError as exc:
                # The message stays in flight; _recall charges it when the session ends.
                session.lose(str(exc))
                return
            backlog.ack(message)
            counters.published += 1
            raise_if_cancelled()  # acknowledged, but asked to stop
            widen()

    def _recall(self, *, count_failure: bool) -> None:
        """Put in-flight messages back at the head; charge each a failure if the link broke."""
        backlog = self._backlog
        recalled = backlog.queue.recall_in_flight()
        if not count_failure:  # stopped by disconnect(): not the messages' fault
            backlog.superseded(backlog.queue.requeue(recalled))
            return
        keep = []
        for message in recalled:
            self._counters.failed += 1
            message = replace(message, failures=message.failures + 1)
            if message.failures > self._config.message_retry_limit:
                self._counters.dropped_retry += 1
                _LOG.error("dropped message for %s after %d failed sends",
                           message.topic, message.failures)
                backlog.bury(message, "retry_limit")
            else:
                keep.append(message)
        backlog.superseded(backlog.queue.requeue(keep))
        backlog.session_lost()
