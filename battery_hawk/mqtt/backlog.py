"""What the interface holds until the broker acknowledges it: memory first, disk behind.

The memory queue is the fast path. While a connection is up and the in-flight window
has room, a message goes to memory only and is on the wire at once. Whenever it cannot
go out at once (no connection, window full, or older messages still waiting on disk)
it is written to the spool *before* ``add()`` returns, and memory holds at most
``message_queue_size`` of them; the rest wait on disk and are loaded, in order, as
memory makes room. A row is deleted only after the broker's acknowledgement.

Invariant that keeps the order: spool row ids follow publish order. Before a message
goes to disk, every older message still held in memory only ("volatile") is written
first; and while rows wait on disk, nothing bypasses them.

A spool that fails (full or read-only disk) is given up for the run: its rows are
loaded into memory and the queue behaves as without a spool (oldest dropped when
full); that is logged once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from .queue import MessageQueue, QueuedMessage
from .spool import AddResult, DeadLetter, Spool, SpoolError

__all__ = ["Backlog", "BacklogCounters"]

_LOG = logging.getLogger("battery_hawk.mqtt")

_LOAD_BATCH = 500
_RECONCILE_INTERVAL = 5.0  # s: look for rows another process added (dlq replay)

DeadLetterSink = Callable[[QueuedMessage, str], None]


@dataclass(slots=True)
class BacklogCounters:
    """Counters of the spool side (the queue side is in processor.Counters)."""

    dropped_overflow: int = 0
    superseded: int = 0
    spool_evicted: int = 0  # oldest readings deleted at the disk bound
    dead_letters: int = 0


class Backlog:
    """Memory queue plus optional spool; owns the order between them."""

    def __init__(self, queue: MessageQueue, spool: Spool | None, max_in_flight: int,
                 dead_letter: DeadLetterSink) -> None:
        self.queue = queue
        self._spool = spool
        self._spool_ok = False  # opened and not failed
        self._gave_up = False  # a spool error switched to memory for the rest of the run
        self._max_in_flight = max_in_flight
        self._dead_letter_hook = dead_letter
        self.counters = BacklogCounters()
        self._seq = itertools.count()
        self._row_of: dict[int, int] = {}  # seq -> row id, for memory messages on disk
        self._seq_of: dict[int, int] = {}  # row id -> seq
        self._volatile: dict[int, QueuedMessage] = {}  # seq -> memory-only message
        self._loaded_upto = 0  # highest row id that is (or was) in memory
        self._sent_upto = 0  # highest row id handed to the wire: never evicted
        self._unloaded = 0  # rows on disk above _loaded_upto
        self._lock = asyncio.Lock()  # orders disk writes and loads
        self._wake_loader = asyncio.Event()
        self._to_delete: list[int] = []
        self._to_bury: list[tuple[QueuedMessage, str, int | None]] = []
        self._wake_writer = asyncio.Event()
        self._write_lock = asyncio.Lock()  # one batch of deletes/burials at a time
        self._loaded = asyncio.Event()  # set after every load round
        self._persist_wanted = False
        self._evict_logged = False
        self.spool_bytes = 0
        self.dead_letters_held = 0  # rows in the dead-letter table

    # -- life cycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Open the spool and count what an earlier run left; a failure means memory only."""
        if self._spool is None:
            return
        try:
            await self._spool.open()
            self._unloaded = await self._spool.count_after(0)
            self.spool_bytes = await self._spool.used_bytes()
            self.dead_letters_held = await self._spool.dead_letter_count()
        except SpoolError as exc:
            await self._give_up_spool(exc)
            return
        self._spool_ok = True
        if self._unloaded:
            _LOG.info("spool %s holds %d message(s) from an earlier run; delivering them",
                      self._spool.path, self._unloaded)
            self._wake_loader.set()

    async def close(self) -> int:
        """Write memory-only messages to the spool, settle pending deletes; close.

        Returns how many messages stay undelivered (on disk or, without spool, lost).
        """
        if not self._spool_ok or self._spool is None:
            return len(self.queue)
        async with self._lock:
            try:
                self.superseded(self.queue.requeue(self.queue.recall_in_flight()))
                await self._persist_volatile()
            except SpoolError as exc:
                await self._give_up_spool(exc)
        await self._flush_writes()
        left = len(self.queue) - len(self._volatile) + self._unloaded
        if self._spool is not None:
            await self._spool.close()
        self._spool_ok = False
        return left

    @property
    def spooling(self) -> bool:
        """True while the spool is open and working."""
        return self._spool_ok

    def __len__(self) -> int:
        """Messages held: in memory (pending or in flight) and on disk only."""
        return len(self.queue) + self._unloaded

    @property
    def on_disk_only(self) -> int:
        return self._unloaded

    # -- adding ---------------------------------------------------------------------

    async def add(self, message: QueuedMessage, connected: bool) -> None:
        """Hold ``message`` until acknowledged (on disk first unless it goes out at once)."""
        queue = self.queue
        if not self._spool_ok or (
            connected and not self._unloaded and not self._persist_wanted
            and queue.pending + queue.in_flight < self._max_in_flight
            and len(queue) < queue.maxsize
        ):
            self._put_memory(message, volatile=self._spool_ok)
            return
        async with self._lock:
            if not self._spool_ok:  # failed while we waited for the lock
                self._put_memory(message, volatile=False)
                return
            try:
                await self._persist_volatile()
                if message.supersede:
                    self._forget(queue.supersede(message.topic), superseded=True)
                result = await self._spool_add([message])
            except SpoolError as exc:
                await self._give_up_spool(exc)
                self._put_memory(message, volatile=False)
                return
            row = result.ids[0]
            if not self._unloaded and len(queue) < queue.maxsize:
                self._put_loaded(row, message)
            else:
                self._unloaded += 1
                self._wake_loader.set()

    def _put_memory(self, message: QueuedMessage, *, volatile: bool) -> None:
        message = replace(message, seq=next(self._seq))
        if message.supersede:
            self._forget(self.queue.supersede(message.topic), superseded=True)
        if volatile:
            self._volatile[message.seq] = message
        dropped = self.queue.put(message)
        if dropped is not None:
            self.counters.dropped_overflow += 1
            self._forget(dropped)
            self._dead_letter_hook(dropped, "overflow")

    def _put_loaded(self, row: int, message: QueuedMessage) -> None:
        message = replace(message, seq=next(self._seq))
        self._row_of[message.seq] = row
        self._seq_of[row] = message.seq
        self._loaded_upto = max(self._loaded_upto, row)
        self.queue.put(message)

    async def _spool_add(self, messages: list[QueuedMessage]) -> AddResult:
        assert self._spool is not None
        result = await self._spool.add(messages, self._sent_upto)
        for row in result.superseded:
            if row not in self._seq_of and row > self._loaded_upto:
                self.counters.superseded += 1  # waiting on disk only: counted here
            self._drop_row(row)
        if result.evicted:
            self.counters.spool_evicted += len(result.evicted)
            if not self._evict_logged:
                self._evict_logged = True
                _LOG.error("spool %s is full (storage.max_spool_mb): dropping the oldest "
                           "readings; the count is in the stats (spool_evicted)",
                           self._spool.path)
            for row in result.evicted:
                self._drop_row(row)
        return result

    def _drop_row(self, row: int) -> None:
        """A row is gone from disk: remove its message from memory, or from the count."""
        seq = self._seq_of.pop(row, None)
        if seq is not None:
            self._row_of.pop(seq, None)
            self.queue.discard([seq])
        elif row > self._loaded_upto:
            self._unloaded -= 1

    async def _persist_volatile(self) -> None:
        """Write every memory-only message to the spool (they are older than anything new)."""
        self._persist_wanted = False
        if not self._volatile:
            return
        held = {m.seq: m for m in self.queue.snapshot()}
        volatile = sorted((held.get(seq, m) for seq, m in self._volatile.items()),
                          key=lambda m: m.seq)
        result = await self._spool_add(volatile)
        for message, row in zip(volatile, result.ids, strict=True):
            if self._volatile.pop(message.seq, None) is None:
                self._to_delete.append(row)  # acknowledged while we wrote it
                continue
            self._row_of[message.seq] = row
            self._seq_of[row] = message.seq
            self._loaded_upto = max(self._loaded_upto, row)
        self._wake_writer.set()

    # -- the processor's side -----------------------------------------------------------

    def take(self) -> QueuedMessage | None:
        message = self.queue.take()
        if message is not None:
            row = self._row_of.get(message.seq)
            if row is not None and row > self._sent_upto:
                self._sent_upto = row
        return message

    def ack(self, message: QueuedMessage) -> None:
        """The broker acknowledged ``message``: forget it, delete its row (batched)."""
        self.queue.ack(message)
        self._forget(message)
        if self._unloaded and self.queue.maxsize - len(self.queue) >= min(
                self._unloaded, max(1, self.queue.maxsize // 4)):
            self._wake_loader.set()

    def superseded(self, messages: list[QueuedMessage]) -> None:
        """Recalled state messages a newer one replaced: forget them."""
        for message in messages:
            self._forget(message, superseded=True)

    def session_lost(self) -> None:
        """Nothing is on the wire now: have memory-only messages written to disk."""
        if self._spool_ok and self._volatile:
            self._persist_wanted = True
            self._wake_loader.set()

    def bury(self, message: QueuedMessage, reason: str) -> None:
        """A dead letter: tell the hook, keep it in the spool's dead-letter table."""
        self.counters.dead_letters += 1
        row = self._row_of.get(message.seq)
        self._forget(message, keep_row=True)
        if self._spool_ok:
            self._to_bury.append((message, reason, row))
            self._wake_writer.set()
        self._dead_letter_hook(message, reason)

    def _forget(self, message: QueuedMessage | None, *, superseded: bool = False,
                keep_row: bool = False) -> None:
        if message is None:
            return
        if superseded:
            self.counters.superseded += 1
        self._volatile.pop(message.seq, None)
        row = self._row_of.pop(message.seq, None)
        if row is not None:
            self._seq_of.pop(row, None)
            if not keep_row:
                self._to_delete.append(row)
                self._wake_writer.set()

    # -- background tasks -----------------------------------------------------------

    async def run_loader(self) -> None:
        """Load waiting rows as memory makes room; write volatile messages after a loss."""
        while True:
            try:
                async with asyncio.timeout(_RECONCILE_INTERVAL):
                    await self._wake_loader.wait()
            except TimeoutError:
                await self._reconcile()
                continue
            self._wake_loader.clear()
            if not self._spool_ok:
                self._loaded.set()
                continue
            async with self._lock:
                try:
                    if self._persist_wanted:
                        await self._persist_volatile()
                    await self._load()
                except SpoolError as exc:
                    await self._give_up_spool(exc)
            self._loaded.set()

    async def _load(self) -> None:
        assert self._spool is not None
        room = self.queue.maxsize - len(self.queue)
        while self._unloaded > 0 and room > 0:
            limit = min(room, _LOAD_BATCH)
            rows = await self._spool.load(self._loaded_upto, limit)
            for row, message in rows:
                self._put_loaded(row, message)
            self._unloaded = 0 if len(rows) < limit else self._unloaded - len(rows)
            room -= len(rows)
            self._loaded_upto = max(self._loaded_upto, rows[-1][0]) if rows else self._loaded_upto

    async def _reconcile(self) -> None:
        """Count rows another process added (``battery-hawk dlq replay``)."""
        if not self._spool_ok or self._spool is None:
            return
        async with self._lock:
            try:
                self._unloaded = await self._spool.count_after(self._loaded_upto)
                self.spool_bytes = await self._spool.used_bytes()
                self.dead_letters_held = await self._spool.dead_letter_count()
                if self._unloaded:
                    await self._load()
            except SpoolError as exc:
                await self._give_up_spool(exc)

    async def run_writer(self) -> None:
        """Delete acknowledged rows and bury dead letters, many per transaction."""
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            await self._flush_writes()

    async def _flush_writes(self) -> None:
        async with self._write_lock:
            while self._spool_ok and (self._to_delete or self._to_bury):
                assert self._spool is not None
                deletes, self._to_delete = self._to_delete, []
                burials, self._to_bury = self._to_bury, []
                try:
                    if burials:
                        await self._spool.bury(burials)
                        self.dead_letters_held += len(burials)
                    if deletes:
                        await self._spool.delete(deletes)
                except SpoolError as exc:
                    await self._give_up_spool(exc)

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The dead-letter table, oldest first; empty without a working spool."""
        if not self._spool_ok or self._spool is None:
            return []
        await self._flush_writes()
        try:
            return await self._spool.dead_letters(limit)
        except SpoolError as exc:
            await self._give_up_spool(exc)
            return []

    async def replay_dead_letters(self, ids: list[int] | None = None) -> int:
        """Queue dead letters (all, or these ids) for delivery again; how many."""
        if not self._spool_ok or self._spool is None:
            return 0
        await self._flush_writes()
        async with self._lock:
            try:
                count = await self._spool.replay_dead_letters(ids)
                self.dead_letters_held = await self._spool.dead_letter_count()
                self._unloaded = await self._spool.count_after(self._loaded_upto)
                await self._load()
            except SpoolError as exc:
                await self._give_up_spool(exc)
                return 0
        return count

    async def wait_empty(self) -> None:
        """Return once nothing is held in memory or on disk (acknowledged rows deleted)."""
        while True:
            await self.queue.wait_empty()
            if not self._unloaded or not self._spool_ok:
                await self._flush_writes()
                return
            self._loaded.clear()
            self._wake_loader.set()
            await self._loaded.wait()  # the loader refilled memory (or gave up)

    # -- failure ------------------------------------------------------------------------

    async def _give_up_spool(self, exc: SpoolError) -> None:
        """Fall back to memory for the rest of the run; said once."""
        if self._gave_up:
            return  # another write failed at the same time and already said so
        self._gave_up = True
        was_ok, self._spool_ok = self._spool_ok, False
        self._persist_wanted = False
        assert self._spool is not None
        _LOG.error("spool %s unusable (%s): holding messages in memory only from now on "
                   "(the oldest are dropped beyond mqtt.message_queue_size)",
                   self._spool.path, exc)
        self._volatile.clear()
        if was_ok and self._unloaded:
            try:  # a full disk still reads: bring the waiting rows into memory
                rows = await self._spool.load(self._loaded_upto, self._unloaded)
            except SpoolError:
                rows = []
                _LOG.error("%d spooled message(s) stay in %s until the next start",
                           self._unloaded, self._spool.path)
            for _, message in rows:
                self._put_memory(message, volatile=False)
        self._unloaded = 0
        self._row_of.clear()
        self._seq_of.clear()
        self._to_delete.clear()
        self._to_bury.clear()
