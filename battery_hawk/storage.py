"""Per-device sequence counters that survive restarts.

Counters are written atomically (temp file, fsync, rename) at most every ``flush_interval``
seconds and on close, so a Pi's SD card sees a handful of writes a minute, not one per
reading. After a crash at most that interval's readings can repeat a seq number.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["SeqStore"]

_log = logging.getLogger(__name__)


class SeqStore:
    """Hands out the next seq per device and keeps the counters on disk."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        flush_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(directory) / "seq.json"
        self._flush_interval = flush_interval
        self._clock = clock
        self._dirty = False
        self._last_flush = clock()
        self._counters: dict[str, int] = self._load()

    def _load(self) -> dict[str, int]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            _log.warning("cannot read %s (%s); seq counters start again at 1", self._path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}

    def last(self, device_id: str) -> int:
        """The last seq handed out for a device (0 if none)."""
        return self._counters.get(device_id, 0)

    def next(self, device_id: str) -> int:
        """The next seq for a device; flushes to disk when the interval has passed."""
        seq = self._counters.get(device_id, 0) + 1
        self._counters[device_id] = seq
        self._dirty = True
        if self._clock() - self._last_flush >= self._flush_interval:
            self.flush()
        return seq

    def flush(self) -> None:
        """Write the counters now if they changed."""
        self._last_flush = self._clock()
        if not self._dirty:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            with tmp.open("w", encoding="utf-8") as handle:
                json.dump(self._counters, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self._path)
            self._dirty = False
        except OSError as exc:
            _log.warning("cannot write %s: %s", self._path, exc)
