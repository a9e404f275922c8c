"""The bounded FIFO of outgoing messages, with the in-flight window beside it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["MessageQueue", "QueuedMessage"]


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One outgoing message as the interface holds it until the broker acknowledges it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    seq: int  # position in publish order; the queue keeps this order
    enqueued_at: float  # time.time() when publish() accepted it
    failures: int = 0  # failed send attempts so far


class MessageQueue:
    """Bounded FIFO; a message stays counted until it is acknowledged.

    ``pending`` messages wait for a send; ``in_flight`` ones have been handed to the
    client and wait for their acknowledgement. Both count against ``maxsize``. When
    the queue is full the oldest *pending* message is dropped: a message already on
    the wire cannot be recalled, so if everything held is in flight the newcomer is
    admitted and the bound is exceeded by at most one until an ack arrives.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._pending: deque[QueuedMessage] = deque()
        self._in_flight: dict[int, QueuedMessage] = {}
        # one waiter woken per message, not all of them: with a window of 100 publishers
        # an Event would wake 100 tasks to hand out one message
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._is_empty = asyncio.Event()
        self._is_empty.set()

    def __len__(self) -> int:
        return len(self._pending) + len(self._in_flight)

    @property
    def pending(self) -> int:
        """Messages not yet handed to the client."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Messages handed to the client and not yet acknowledged."""
        return len(self._in_flight)

    def put(self, message: QueuedMessage) -> QueuedMessage | None:
        """Append ``message``; return the oldest pending message if it had to make room."""
        dropped = None
        if len(self) >= self.maxsize and self._pending:
            dropped = self._pending.popleft()
        self._pending.append(message)
        self._wake(1)
        self._is_empty.clear()
        return dropped

    def take(self) -> QueuedMessage | None:
        """Move the oldest pending message into flight; ``None`` when nothing is pending."""
        if not self._pending:
            return None
        message = self._pending.popleft()
        self._in_flight[message.seq] = message
        return message

    def ack(self, message: QueuedMessage) -> None:
        """The broker acknowledged ``message``: it leaves the queue."""
        self._in_flight.pop(message.seq, None)
        self._update_empty()

    def recall_in_flight(self) -> list[QueuedMessage]:
        """Remove and return every in-flight message, oldest first."""
        recalled = sorted(self._in_flight.values(), key=lambda m: m.seq)
        self._in_flight.clear()
        self._update_empty()
        return recalled

    def requeue(self, messages: Iterable[QueuedMessage]) -> None:
        """Put recalled messages back at the head, in their original order.

        Every in-flight message is older than every pending one (both leave the head
        in order), so the head is where they belong.
        """
        returning = sorted(messages, key=lambda m: m.seq, reverse=True)
        self._pending.extendleft(returning)
        if returning:
            self._wake(len(returning))
            self._is_empty.clear()

    def snapshot(self) -> list[QueuedMessage]:
        """Every held message, oldest first (in flight ones included)."""
        held = [*self._in_flight.values(), *self._pending]
        return sorted(held, key=lambda m: m.seq)

    def clear(self) -> list[QueuedMessage]:
        """Remove and return every held message, oldest first."""
        held = self.snapshot()
        self._pending.clear()
        self._in_flight.clear()
        self._update_empty()
        return held

    async def wait_pending(self) -> None:
        """Return once a message is pending (woken by put, one waiter per message)."""
        if self._pending:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake(1)  # we were woken for a message: hand the wake-up on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _wake(self, count: int) -> None:
        while count > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    async def wait_empty(self) -> None:
        """Return once nothing is held (pending or in flight)."""
        await self._is_empty.wait()

    def _update_empty(self) -> None:
        if not self._pending and not self._in_flight:
            self._is_empty.set()
