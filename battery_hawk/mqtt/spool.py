"""The durable spool: outgoing messages and dead letters in one SQLite file.

:class:`SpoolFile` is the synchronous store (the daemon runs it in one worker thread;
``battery-hawk dlq`` opens the same file from another process while the daemon runs,
which WAL mode allows). :class:`Spool` is the daemon's asynchronous face of it: every
call runs in that one thread, never on the event loop.

The standard library's sqlite3 is the store: a journal that survives ``kill -9``,
lets a second process read and write while the daemon runs, and needs no server.
``synchronous=NORMAL`` in WAL mode makes a committed row survive a crash of the
process (not necessarily a power cut) without an fsync per message, which spares
SD cards.

Rows of ``messages`` are delivered in ``id`` order (AUTOINCREMENT: an id is never
reused, so "rows after id N" stays true while rows are deleted). A state message has
``state_key`` (its topic) and replaces the row of an older one with the same key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from battery_hawk.errors import BatteryHawkError

from .queue import QueuedMessage

__all__ = ["SPOOL_FILE", "AddResult", "DeadLetter", "Spool", "SpoolError", "SpoolFile"]

_LOG = logging.getLogger("battery_hawk.mqtt")
_T = TypeVar("_T")

SPOOL_FILE: Final = "spool.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    state_key TEXT,
    enqueued_at REAL NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_state_key ON messages(state_key)
    WHERE state_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    supersede INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    failures INTEGER NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL
);
"""


class SpoolError(BatteryHawkError):
    """The spool file cannot be used (full or read-only disk, I/O error)."""


@dataclass(frozen=True, slots=True)
class AddResult:
    """What :meth:`SpoolFile.add` did: new row ids, rows it replaced or evicted."""

    ids: list[int]
    superseded: list[int]  # rows of older state messages with the same topic
    evicted: list[int]  # oldest reading rows deleted to stay within the size bound


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the broker never acknowledged, kept with the reason and time."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    supersede: bool
    enqueued_at: float  # Unix time it was published
    failures: int
    reason: str  # retry_limit | refused | too_large
    dead_at: float  # Unix time


class SpoolFile:
    """The spool file (synchronous). Raises SpoolError for any SQLite failure.

    ``max_bytes`` bounds the bytes used by rows (pages in use); above it the oldest
    reading rows with an id above ``protect_upto`` are deleted (counted in ``evicted``).
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int | None = None,
                 *, check: bool = True) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.moved_aside: Path | None = None
        try:
            self._db = self._connect(check)
        except OSError as exc:
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            if not check or not _is_corrupt(exc) or not self.path.exists():
                raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc
            self.moved_aside = self._move_aside()
            try:
                self._db = self._connect(check)
            except sqlite3.Error as exc2:
                raise SpoolError(f"cannot open spool {self.path}: {exc2}") from exc2

    def _connect(self, check: bool) -> sqlite3.Connection:
        if check:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode}, not wal")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA journal_size_limit=4194304")
            if check:
                result = db.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {result}")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self) -> Path:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                try:
                    source.replace(Path(f"{aside}{suffix}"))
                except OSError as exc:
                    raise SpoolError(f"cannot move corrupt spool {source} aside: {exc}") from exc
        return aside

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    # -- messages ---------------------------------------------------------------------

    def count_after(self, after_id: int) -> int:
        """Rows with an id above ``after_id``."""
        return int(self._one("SELECT count(*) FROM messages WHERE id > ?", (after_id,)))

    def add(self, messages: Sequence[QueuedMessage], protect_upto: int = 0) -> AddResult:
        """Append messages in one transaction; state rows replace older rows of their topic."""
        ids: list[int] = []
        superseded: list[int] = []
        evicted: list[int] = []
        try:
            with self._transaction():
                for m in messages:
                    if m.supersede:
                        superseded += [r[0] for r in self._db.execute(
                            "DELETE FROM messages WHERE state_key = ? RETURNING id", (m.topic,))]
                    cursor = self._db.execute(
                        "INSERT INTO messages (topic, payload, qos, retain, state_key, "
                        "enqueued_at, failures) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (m.topic, m.payload, m.qos, int(m.retain), m.key, m.enqueued_at,
                         m.failures))
                    ids.append(int(cursor.lastrowid or 0))
                if self.max_bytes is not None:
                    evicted = self._evict(protect_upto)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from exc
        return AddResult(ids, superseded, evicted)

    def _evict(self, protect_upto: int) -> list[int]:
        assert self.max_bytes is not None
        evicted: list[int] = []
        while self.used_bytes() > self.max_bytes:
            batch = [r[0] for r in self._db.execute(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE "
                "state_key IS NULL AND id > ? ORDER BY id LIMIT 200) RETURNING id",
                (protect_upto,))]
            if not batch:
                break  # only state and in-flight rows left: they stay
            evicted += batch
        return evicted

    def used_bytes(self) -> int:
        """Bytes of the pages in use (freed pages are reused, the file does not shrink)."""
        pages = int(self._one("PRAGMA page_count"))
        free = int(self._one("PRAGMA freelist_count"))
        return (pages - free) * int(self._one("PRAGMA page_size"))

    def load(self, after_id: int, limit: int) -> list[tuple[int, QueuedMessage]]:
        """Up to ``limit`` rows with an id above ``after_id``, oldest first (seq is 0)."""
        try:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, state_key, enqueued_at, failures "
                "FROM messages WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot read spool {self.path}: {exc}") from exc
        return [(int(r[0]), QueuedMessage(r[1], bytes(r[2]), int(r[3]), bool(r[4]), 0,
                                          float(r[6]), int(r[7]), r[5] is not None))
                for r in rows]

    def delete(self, ids: Iterable[int]) -> None:
        """Remove delivered rows."""
        batch = [(i,) for i in ids]
        try:
            with self._transaction():
                self._db.executemany("DELETE FROM messages WHERE id = ?", batch)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from exc

    # -- dead letters -------------------------------------------------------------------

    def bury(self, letters: Sequence[tuple[QueuedMessage, str, int | None]]) -> None:
        """Move messages to dead_letters: (message, reason, its row id or None)."""
        now = time.time()
        try:
            with self._transaction():
                for m, reason, row in letters:
                    self._db.execute(
                        "INSERT INTO dead_letters (topic, payload, qos, retain, supersede, "
                        "enqueued_at, failures, reason, dead_at) VALUES (?,?,?,?,?,?,?,?,?)",
                        (m.topic, m.payload, m.qos, int(m.retain), int(m.supersede),
                         m.enqueued_at, m.failures, reason, now))
                    if row is not None:
                        self._db.execute("DELETE FROM messages WHERE id = ?", (row,))
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from exc

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        try:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, supersede, enqueued_at, failures, "
                "reason, dead_at FROM dead_letters ORDER BY id LIMIT ?",
                (-1 if limit is None else limit,)).fetchall()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot read spool {self.path}: {exc}") from exc
        return [DeadLetter(int(r[0]), r[1], bytes(r[2]), int(r[3]), bool(r[4]), bool(r[5]),
                           float(r[6]), int(r[7]), r[8], float(r[9])) for r in rows]

    def dead_letter_count(self) -> int:
        return int(self._one("SELECT count(*) FROM dead_letters"))

    def replay_dead_letters(self, ids: Iterable[int] | None = None) -> int:
        """Move dead letters (all, or these ids) back to the outgoing messages; the count."""
        where, args = _id_filter(ids)
        try:
            with self._transaction():
                rows = self._db.execute(
                    "SELECT id, topic, payload, qos, retain, supersede, enqueued_at "
                    f"FROM dead_letters{where} ORDER BY id", args).fetchall()
                for r in rows:
                    key = r[1] if r[5] else None
                    if key is not None:
                        self._db.execute("DELETE FROM messages WHERE state_key = ?", (key,))
                    self._db.execute(
                        "INSERT INTO messages (topic, payload, qos, retain, state_key, "
                        "enqueued_at, failures) VALUES (?, ?, ?, ?, ?, ?, 0)",
                        (r[1], r[2], r[3], r[4], key, r[6]))
                    self._db.execute("DELETE FROM dead_letters WHERE id = ?", (r[0],))
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from exc
        return len(rows)

    def purge_dead_letters(self, ids: Iterable[int] | None = None) -> int:
        """Delete dead letters (all, or these ids); the count."""
        where, args = _id_filter(ids)
        try:
            with self._transaction():
                cursor = self._db.execute(f"DELETE FROM dead_letters{where}", args)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from exc
        return cursor.rowcount

    # -- helpers --------------------------------------------------------------------------

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        try:
            return self._db.execute(sql, args).fetchone()[0]
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot read spool {self.path}: {exc}") from exc

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")


def _id_filter(ids: Iterable[int] | None) -> tuple[str, tuple[int, ...]]:
    if ids is None:
        return "", ()
    wanted = tuple(int(i) for i in ids)
    return f" WHERE id IN ({','.join('?' * len(wanted)) or 'NULL'})", wanted


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


class Spool:
    """The spool for the event loop: every call runs in one worker thread."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.path = Path(directory) / SPOOL_FILE
        self.max_bytes = max_bytes
        self._file: SpoolFile | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        """Open (or create) the file; a corrupt one is moved aside and logged. SpoolError."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="battery-hawk-spool")
        opened = await self._run(SpoolFile, self.path, self.max_bytes)
        self._file = opened
        if opened.moved_aside is not None:
            _LOG.error("spool %s was corrupt: moved aside to %s; starting with an empty spool",
                       self.path, opened.moved_aside)

    @property
    def file(self) -> SpoolFile:
        if self._file is None:
            raise SpoolError("spool not open")
        return self._file

    async def count_after(self, after_id: int) -> int:
        return await self._run(self.file.count_after, after_id)

    async def add(self, messages: Sequence[QueuedMessage], protect_upto: int) -> AddResult:
        return await self._run(self.file.add, messages, protect_upto)

    async def load(self, after_id: int, limit: int) -> list[tuple[int, QueuedMessage]]:
        return await self._run(self.file.load, after_id, limit)

    async def delete(self, ids: Sequence[int]) -> None:
        await self._run(self.file.delete, ids)

    async def bury(self, letters: Sequence[tuple[QueuedMessage, str, int | None]]) -> None:
        await self._run(self.file.bury, letters)

    async def dead_letters(self, limit: int | None) -> list[DeadLetter]:
        return await self._run(self.file.dead_letters, limit)

    async def replay_dead_letters(self, ids: Sequence[int] | None) -> int:
        return await self._run(self.file.replay_dead_letters, ids)

    async def used_bytes(self) -> int:
        return await self._run(self.file.used_bytes)

    async def dead_letter_count(self) -> int:
        return await self._run(self.file.dead_letter_count)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if self._file is not None:
            file, self._file = self._file, None
            await asyncio.wrap_future(executor.submit(file.close))
        executor.shutdown(wait=False)

    async def _run(self, func: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            raise SpoolError("spool closed")
        # wrap_future, not run_in_executor: the same, minus a default-executor lookup
        return await asyncio.wrap_future(self._executor.submit(func, *args))
