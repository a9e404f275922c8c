"""What the daemon remembers across restarts, in small JSON files under storage.path.

- seq.json: per-device sequence counters with a block of seqs reserved ahead of use
  (one write per half ``block`` readings for all devices together, plus one every
  ``flush_interval`` seconds), so a Pi's SD card sees a handful of writes a minute, not
  one per reading, and a seq is never reused after a crash (the rest of the block is
  skipped instead).
- announced.json: which Home Assistant entities each device has, and which of its alerts
  are active, so removed devices lose their entities and alerts are not raised twice.
  A change is written at once after a quiet ``flush_interval``; changes that follow
  within it are written together when it has passed (``flush_if_due``, called from the
  daemon's availability loop) or at a clean stop (``flush``). Startup with 200 devices
  is one write, not 200 growing ones. A crash loses at most the last interval's changes:
  the daemon then announces a device again, or raises an alert a second time.

Every file is written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["Announced", "Announcements", "SeqStore", "read_json", "write_json"]

_log = logging.getLogger(__name__)


def read_json(path: Path) -> object | None:
    """A JSON file's content; None if it is missing or unreadable (logged)."""
    try:
        data: object = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _log.warning("cannot read %s (%s); starting afresh", path, exc)
        return None
    return data


def write_json(path: Path, data: object, *, quiet: bool = False,
               previous: Path | None = None) -> bool:
    """Replace a JSON file atomically; False (logged unless quiet) if it cannot be written.

    previous: keep the file being replaced there (one generation back).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        if previous is not None:
            with contextlib.suppress(FileNotFoundError):
                path.replace(previous)
        tmp.replace(path)
    except OSError as exc:
        if not quiet:
            _log.warning("cannot write %s: %s", path, exc)
        return False
    return True


class SeqStore:
    """Hands out the next seq per device; no seq is handed out twice, even after a crash.

    Seqs are reserved on disk in blocks of ``block`` ahead of use: before the first seq
    of a block is handed out, the end of the block is written (atomically). A restart
    after a crash carries on after the reserved block, so the seqs of that block that
    were never used are skipped, never reused for different data. A clean
    :meth:`close` gives the unused part back, so a restart carries on without a gap.
    The last seq is also written every ``flush_interval`` s (cheap, for readers).

    The file before the last write is kept as ``seq.json.prev``. If ``seq.json`` is
    damaged or missing while that one is there, every device carries on one block past
    what the older file reserved (each write reserves at most one block more than the one
    before), so even then a seq is skipped, never repeated.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        flush_interval: float = 5.0,
        block: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if block < 1:
            raise ValueError("block must be >= 1")
        self._path = Path(directory) / "seq.json"
        self._previous = self._path.with_name("seq.json.prev")
        self._floor = 0  # where a device not in the file starts (after a fallback)
        self._flush_interval = flush_interval
        self._block = block
        self._clock = clock
        self._dirty = False
        self._write_failing = False
        self._last_flush = clock()
        self._counters: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        data = read_json(self._path)
        skip = 0
        if not isinstance(data, dict):
            older = read_json(self._previous)
            if not isinstance(older, dict) and not self._path.exists():
                return  # the first start
            # the newest reservations are lost: they were at most one block past these
            data, skip = (older if isinstance(older, dict) else {}), self._block
            self._floor = self._block
            _log.warning("%s is damaged or missing: every device's seq carries on %d past "
                         "what %s reserved (a gap, never a repeat)", self._path, skip,
                         self._previous.name if isinstance(older, dict) else "a first write")
        for key, value in data.items():
            if isinstance(value, int):  # the older format: the last seq only
                last = reserved = value
            elif isinstance(value, dict) and isinstance(value.get("last"), int):
                last = value["last"]
                held = value.get("reserved")
                reserved = held if isinstance(held, int) else last
            else:
                continue
            # after a crash, the reserved block may have been partly used: skip it all
            self._counters[str(key)] = self._reserved[str(key)] = max(last, reserved) + skip

    def last(self, device_id: str) -> int:
        """The last seq handed out for a device (0 if none)."""
        return self._counters.get(device_id, 0)

    def next(self, device_id: str) -> int:
        """The next seq for a device; reserves the next block on disk when one is used up."""
        last = self._counters.get(device_id, self._floor)
        self._dirty = True
        if last >= self._reserved.get(device_id, 0):
            self._reserve(device_id, last)
            self._counters[device_id] = last + 1
            self.flush()
        else:
            self._counters[device_id] = last + 1
            self.flush_if_due()
        return last + 1

    def _reserve(self, device_id: str, last: int) -> None:
        """A new block for ``device_id``, and in the same write for every device past half
        of its own: devices renew together, so 200 of them cost one write per half block,
        not one each."""
        self._reserved[device_id] = last + self._block
        half = self._block // 2
        for other, used in self._counters.items():
            if self._reserved.get(other, 0) - used < half:
                self._reserved[other] = used + self._block

    def flush_if_due(self) -> None:
        """Write the counters if they changed and flush_interval has passed."""
        if self._dirty and self._clock() - self._last_flush >= self._flush_interval:
            self.flush()

    def flush(self) -> None:
        """Write the counters and reservations now if they changed; a failure is logged once."""
        self._last_flush = self._clock()
        if not self._dirty:
            return
        self._write()

    def close(self) -> None:
        """Give back the unused part of every reserved block (a clean stop), and write."""
        self._reserved = dict(self._counters)
        self._write()

    def _write(self) -> None:
        data = {device: {"last": last, "reserved": self._reserved.get(device, last)}
                for device, last in self._counters.items()}
        if write_json(self._path, data, quiet=self._write_failing, previous=self._previous):
            self._dirty = False
            if self._write_failing:
                _log.info("%s is writable again", self._path)
            self._write_failing = False
        else:
            self._write_failing = True


@dataclass(frozen=True, slots=True)
class Announced:
    """One device as Home Assistant knows it: its sensor fields, alert kinds, active alerts."""

    fields: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()
    active: tuple[str, ...] = ()
    fingerprint: str = ""  # name, model, expire_after: what else discovery depends on


class Announcements:
    """Which entities each device has in Home Assistant, and its active alerts, on disk.

    It lets the daemon remove the entities of a device that left the configuration, even
    across restarts, announce again only when a device's set of fields grows, and not
    raise an alert again after a restart when it was already raised.
    """

    def __init__(
        self,
        directory: Path,
        *,
        flush_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = directory / "announced.json"
        self._flush_interval = flush_interval
        self._clock = clock
        self._dirty = False
        self._write_failing = False
        self._last_write: float | None = None
        raw = read_json(self._path)
        self._data: dict[str, Announced] = {}
        if isinstance(raw, dict):
            for device_id, record in raw.items():
                if isinstance(record, dict):
                    names = {k: tuple(str(x) for x in record.get(k) or ())
                             for k in ("fields", "alerts", "active")}
                    self._data[str(device_id)] = Announced(
                        **names, fingerprint=str(record.get("fingerprint", "")))

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._data

    def items(self) -> list[tuple[str, Announced]]:
        return list(self._data.items())

    def get(self, device_id: str) -> Announced:
        return self._data.get(device_id, Announced())

    def update(self, device_id: str, fields: Iterable[str], alerts: Iterable[str],
               fingerprint: str = "") -> bool:
        """Merge what a device reports; True if anything new needs announcing."""
        old = self._data.get(device_id)
        current = old or Announced()
        new = replace(current, fields=tuple(dict.fromkeys((*current.fields, *fields))),
                      alerts=tuple(dict.fromkeys(alerts)), fingerprint=fingerprint)
        if new == old:
            return False
        self._data[device_id] = new
        self._save()
        return True

    def set_active(self, device_id: str, active: Iterable[str]) -> None:
        """Remember which alerts of a device are raised."""
        current = self._data.get(device_id, Announced())
        new = replace(current, active=tuple(active))
        if new != current:
            self._data[device_id] = new
            self._save()

    def forget(self, device_id: str) -> None:
        if self._data.pop(device_id, None) is not None:
            self._save()

    def flush_if_due(self) -> None:
        """Write the changes if there are any and flush_interval has passed since the last."""
        if self._dirty and (self._last_write is None
                            or self._clock() - self._last_write >= self._flush_interval):
            self.flush()

    def flush(self) -> None:
        """Write the changes now, if there are any (a clean stop calls this)."""
        if not self._dirty:
            return
        self._last_write = self._clock()
        # plain dicts by hand: asdict deep-copies every tuple, which shows at 200 devices
        data = {k: {"fields": v.fields, "alerts": v.alerts, "active": v.active,
                    "fingerprint": v.fingerprint} for k, v in self._data.items()}
        if write_json(self._path, data, quiet=self._write_failing):  # a failure: said once
            self._dirty = False
            if self._write_failing:
                _log.info("%s is writable again", self._path)
            self._write_failing = False
        else:
            self._write_failing = True

    def _save(self) -> None:
        self._dirty = True
        self.flush_if_due()
