"""The bounded FIFO of outgoing messages, with the in-flight window beside it.

Two kinds of message share it (STYLE.md rule 15): *state* messages (``supersede``
set; retained topics) of which only the newest per topic matters, and *events*
(readings, alert transitions) of which every one is delivered, in order.
"""

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
    supersede: bool = False  # state: a newer message for the same topic replaces it

    @property
    def key(self) -> str | None:
        """The supersede key (the topic) of a state message; None for an event."""
        return self.topic if self.supersede else None


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
        self._removed: set[int] = set()  # seqs of tombstones still in _pending
        self._by_key: dict[str, QueuedMessage] = {}  # pending state messages by topic
        self._in_flight: dict[int, QueuedMessage] = {}
        # one waiter woken per message, not all of them: with a window of 100 publishers
        # an Event would wake 100 tasks to hand out one message
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._is_empty = asyncio.Event()
        self._is_empty.set()

    def __len__(self) -> int:
        return len(self._pending) - len(self._removed) + len(self._in_flight)

    @property
    def pending(self) -> int:
        """Messages not yet handed to the client."""
        return len(self._pending) - len(self._removed)

    @property
    def in_flight(self) -> int:
        """Messages handed to the client and not yet acknowledged."""
        return len(self._in_flight)

    def put(self, message: QueuedMessage) -> QueuedMessage | None:
        """Append ``message``; return the oldest pending message if it had to make room.

        Call :meth:`supersede` first for a state message: put() does not look for an
        older message of the same topic.
        """
        dropped = None
        if len(self) >= self.maxsize and self.pending:
            dropped = self._popleft()
        self._pending.append(message)
        if message.supersede:
            self._by_key[message.topic] = message
        self._wake(1)
        self._is_empty.clear()
        return dropped

    def supersede(self, topic: str) -> QueuedMessage | None:
        """Remove and return the pending state message for ``topic``, if there is one."""
        old = self._by_key.pop(topic, None)
        if old is not None:
            self._removed.add(old.seq)
            self._update_empty()
        return old

    def discard(self, seqs: Iterable[int]) -> list[QueuedMessage]:
        """Remove the pending messages with these seqs; return those that were pending."""
        wanted = set(seqs) - self._removed
        found = [m for m in self._pending if m.seq in wanted]
        for message in found:
            self._removed.add(message.seq)
            if message.supersede and self._by_key.get(message.topic) is message:
                del self._by_key[message.topic]
        self._update_empty()
        return found

    def take(self) -> QueuedMessage | None:
        """Move the oldest pending message into flight; ``None`` when nothing is pending."""
        message = self._popleft()
        if message is not None:
            self._in_flight[message.seq] = message
        return message

    def _popleft(self) -> QueuedMessage | None:
        while self._pending:
            message = self._pending.popleft()
            if message.seq in self._removed:
                self._removed.discard(message.seq)
                continue
            if message.supersede and self._by_key.get(message.topic) is message:
                del self._by_key[message.topic]
            return message
        return None

    def ack(self, message: QueuedMessage) -> None:
        """The broker acknowledged ``message``: it leaves the queue."""
        self._in_flight.pop(message.seq, None)
        self._update_empty()

    def recall_in_flight(self) -> list[QueuedMessage]:
        """Remove and return every in-flight message, oldest first; requeue() follows."""
        recalled = sorted(self._in_flight.values(), key=lambda m: m.seq)
        self._in_flight.clear()  # not "empty" yet: the caller requeues what it keeps
        return recalled

    def requeue(self, messages: Iterable[QueuedMessage]) -> list[QueuedMessage]:
        """Put recalled messages back at the head, in their original order.

        Every in-flight message is older than every pending one (both leave the head
        in order), so the head is where they belong. A state message whose topic has a
        newer one pending is not put back; those superseded ones are returned.
        """
        returning: list[QueuedMessage] = []
        superseded: list[QueuedMessage] = []
        for message in sorted(messages, key=lambda m: m.seq, reverse=True):
            if message.supersede:
                if message.topic in self._by_key:
                    superseded.append(message)
                    continue
                self._by_key[message.topic] = message
            returning.append(message)
        self._pending.extendleft(returning)
        if returning:
            self._wake(len(returning))
            self._is_empty.clear()
        self._update_empty()
        return superseded

    def snapshot(self) -> list[QueuedMessage]:
        """Every held message, oldest first (in flight ones included)."""
        pending = [m for m in self._pending if m.seq not in self._removed]
        return sorted([*self._in_flight.values(), *pending], key=lambda m: m.seq)

    def pending_messages(self) -> list[QueuedMessage]:
        """The pending (not in flight) messages, oldest first."""
        return [m for m in self._pending if m.seq not in self._removed]

    def clear(self) -> list[QueuedMessage]:
        """Remove and return every held message, oldest first."""
        held = self.snapshot()
        self._pending.clear()
        self._removed.clear()
        self._by_key.clear()
        self._in_flight.clear()
        self._update_empty()
        return held

    async def wait_pending(self) -> None:
        """Return once a message is pending (woken by put, one waiter per message)."""
        if self.pending:
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
        if not self.pending and not self._in_flight:
            self._pending.clear()
            self._removed.clear()
            self._is_empty.set()
