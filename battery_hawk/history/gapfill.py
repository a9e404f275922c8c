"""Gap fill: readings a Leagend monitor kept while the daemon did not hear it.

How it works:

- GapLedger watches the live readings the daemon publishes (the GapWatch pipeline
  stage). When one arrives more than a few poll intervals (``offline_after``) after
  the previous one of the same device, the time between them is a gap. The last live
  reading's time is kept in ``history.json`` under ``storage.path``, so the first
  reading after a restart finds the gap since the last reading before the stop.
- The device's next visit, right after its live reading, downloads its history in a
  connection of its own (the live link is closed first, so other devices get the
  radio in between), bounded by the visit's time budget and by size, and publishes
  on ``P/device/D/readings`` the records that fall inside the gaps, oldest first,
  each with its own timestamp (newest record = download time, 2 minutes apart),
  ``"source": "history"`` and no ``seq``.
- A record closer than a minute to a live reading is left out (live readings cover
  that time), and ``filled_until`` remembers the newest record published from history,
  so no period is published twice. A download that fails, is cut by a dropped link or
  by shutdown publishes nothing and leaves the gaps pending: the next visit tries
  again (after a restart too: pending gaps are kept in ``history.json``); after a
  second failure in a row the tries wait 30 s, then twice as long each time, up to 30
  min.
- A gap older than the device's memory is filled as far as the memory reaches, then
  closed: what the device no longer has cannot be fetched.

BM6/BM7 pages are cumulative (selector N returns the newest N pages; see
battery_hawk.protocols.history), so a download cannot be cut into page-sized requests
that each stand alone: one request asks for just the pages the gap needs (one page
covers 8 h 32 min, at most three). A BM2 sends its whole memory in one download.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from battery_hawk.ble.history import fetch_history
from battery_hawk.ble.link import Transport
from battery_hawk.errors import DecodeError, TransportError
from battery_hawk.models import DeviceInfo, DeviceReading
from battery_hawk.pipeline.base import ProcessedReading
from battery_hawk.protocols.base import Driver
from battery_hawk.protocols.history import (
    HISTORY_FAMILIES,
    HISTORY_INTERVAL,
    MAX_PAGES,
    PAGE_RECORDS,
    HistoryRecord,
    pages_for,
)
from battery_hawk.publisher import format_timestamp, state_payload
from battery_hawk.storage import read_json, write_json

__all__ = ["Gap", "GapFiller", "GapLedger", "GapWatch", "history_payload"]

_log = logging.getLogger(__name__)

MARGIN = HISTORY_INTERVAL / 2  # a record this close to a live reading is covered by it
MAX_GAPS = 16  # pending gaps kept per device; older ones are dropped first
MEMORY = MAX_PAGES * PAGE_RECORDS * HISTORY_INTERVAL  # the furthest back a download reaches
RETRY_FIRST = timedelta(seconds=30)  # after a second failed download in a row
RETRY_MAX = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Gap:
    """The time between two live readings of one device: start and end are those readings."""

    start: datetime
    end: datetime

    def covers(self, ts: datetime) -> bool:
        """Whether ts lies inside, away from the live readings at both ends."""
        return self.start + MARGIN <= ts <= self.end - MARGIN


def _ts(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


@dataclass(slots=True)
class _Device:
    last_live: datetime | None = None
    filled_until: datetime | None = None
    gaps: tuple[Gap, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "last_live": self.last_live.isoformat() if self.last_live else None,
            "filled_until": self.filled_until.isoformat() if self.filled_until else None,
            "gaps": [[g.start.isoformat(), g.end.isoformat()] for g in self.gaps],
        }

    @classmethod
    def from_json(cls, data: object) -> _Device:
        if not isinstance(data, dict):
            return cls()
        gaps = []
        for pair in data.get("gaps") or ():
            if isinstance(pair, list) and len(pair) == 2:
                start, end = _ts(pair[0]), _ts(pair[1])
                if start is not None and end is not None and start < end:
                    gaps.append(Gap(start, end))
        return cls(_ts(data.get("last_live")), _ts(data.get("filled_until")), tuple(gaps))


class GapLedger:
    """Per device: the last live reading, the pending gaps, how far history was published.

    Kept in ``history.json`` under the storage directory. A new gap or a settled one is
    written at once; the last live time at most every ``flush_interval`` seconds (like
    seq.json), which is far less than MARGIN, and on close.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        flush_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(directory) / "history.json"
        self._flush_interval = flush_interval
        self._clock = clock
        self._last_flush = clock()
        self._dirty = False
        data = read_json(self._path)
        self._devices: dict[str, _Device] = (
            {str(k): _Device.from_json(v) for k, v in data.items()}
            if isinstance(data, dict) else {}
        )

    def _device(self, device_id: str) -> _Device:
        return self._devices.setdefault(device_id, _Device())

    def observe_live(self, device_id: str, ts: datetime, threshold: timedelta) -> Gap | None:
        """Note a live reading; the gap it ends, if the previous one is over threshold ago."""
        device = self._device(device_id)
        previous, device.last_live = device.last_live, ts
        gap = None
        if previous is not None and ts - previous > threshold:
            gap = Gap(previous, ts)
            device.gaps = (*device.gaps, gap)[-MAX_GAPS:]
            self.flush()
        else:
            self._dirty = True
            if self._clock() - self._last_flush >= self._flush_interval:
                self.flush()
        return gap

    def pending(self, device_id: str) -> tuple[Gap, ...]:
        device = self._devices.get(device_id)
        return device.gaps if device else ()

    def expire(self, device_id: str, before: datetime) -> int:
        """Drop the gaps that ended before ``before`` (beyond the device's memory); how many."""
        device = self._devices.get(device_id)
        if device is None:
            return 0
        keep = tuple(g for g in device.gaps if g.end >= before)
        dropped = len(device.gaps) - len(keep)
        if dropped:
            device.gaps = keep
            self.flush()
        return dropped

    def select(self, device_id: str, records: Iterable[HistoryRecord]) -> list[HistoryRecord]:
        """The records inside pending gaps and newer than what was filled, oldest first."""
        device = self._devices.get(device_id)
        if device is None or not device.gaps:
            return []
        after = device.filled_until
        chosen = [
            r for r in records
            if (after is None or r.timestamp > after + MARGIN)
            and any(gap.covers(r.timestamp) for gap in device.gaps)
        ]
        return sorted(chosen, key=lambda r: r.timestamp)

    def settle(self, device_id: str, published: Sequence[HistoryRecord]) -> None:
        """A download went through: its gaps are done, ``published`` went out."""
        device = self._device(device_id)
        if published:
            newest = max(r.timestamp for r in published)
            if device.filled_until is None or newest > device.filled_until:
                device.filled_until = newest
        device.gaps = ()
        self.flush()

    def forget(self, device_id: str) -> None:
        if self._devices.pop(device_id, None) is not None:
            self.flush()

    def flush(self) -> None:
        data = {did: d.to_json() for did, d in self._devices.items()}
        if write_json(self._path, data):
            self._dirty = False
        self._last_flush = self._clock()

    def close(self) -> None:
        if self._dirty:
            self.flush()


def history_payload(device: DeviceInfo, record: HistoryRecord) -> bytes:
    """The document of one history reading: the live one's fields, no seq, source history."""
    doc = json.loads(state_payload(
        DeviceReading(device=device, reading=record.reading(), timestamp=record.timestamp, seq=0)
    ))
    del doc["seq"]
    doc["timestamp"] = format_timestamp(record.timestamp)
    doc["source"] = "history"
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


PublishFn = Callable[[str, bytes], Awaitable[None]]
"""Publishes one non-retained message (topic, payload) at the configured QoS."""


class GapFiller:
    """Downloads and publishes the history a device's pending gaps need (see module doc)."""

    def __init__(
        self,
        ledger: GapLedger,
        publish: PublishFn,
        topic_for: Callable[[str], str],
        *,
        stop: asyncio.Event,
        timeout: float = 20.0,
        pause: float = 1.0,
        on_published: Callable[[DeviceInfo, Sequence[HistoryRecord]], None] | None = None,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ledger = ledger
        self._publish = publish
        self._topic_for = topic_for
        self._stop = stop
        self._timeout = timeout
        self._pause = pause
        self._on_published = on_published
        self._wall = wall
        self._failing: set[str] = set()
        self._failures: dict[str, int] = {}  # device_id -> downloads failed in a row
        self._not_before: dict[str, datetime] = {}  # device_id -> next try after a failure

    def due(self, device_id: str) -> bool:
        """Whether the device has gaps to fill and is not waiting after failed downloads."""
        if not self.ledger.pending(device_id):
            return False
        not_before = self._not_before.get(device_id)
        return not_before is None or self._wall() >= not_before

    async def visit(
        self, transport: Transport, address: str, driver: Driver, info: DeviceInfo
    ) -> int:
        """After a live reading: fill the device's pending gaps; the records published.

        Failures are logged (once per run of failures) and leave the gaps pending.
        """
        if self.ledger.expire(info.device_id, self._wall() - MEMORY):
            _log.info("%s (%s): a gap older than the device's memory was given up",
                      info.name, info.address)
        gaps = self.ledger.pending(info.device_id)
        if (not gaps or driver.family not in HISTORY_FAMILIES or self._stop.is_set()
                or not self.due(info.device_id)):
            return 0
        oldest = min(g.start for g in gaps)
        pages = pages_for(min(self._wall() - oldest, MEMORY))
        download = asyncio.create_task(
            fetch_history(transport, address, driver, pages=pages, timeout=self._timeout,
                          pause=self._pause, now=self._wall),
            name=f"history-{info.device_id}",
        )
        stopping = asyncio.create_task(self._stop.wait(), name=f"history-stop-{info.device_id}")
        try:
            await asyncio.wait({download, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not download.done():  # shutdown: drop the download, the gap stays pending
                download.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await download
                _log.info("%s: history download interrupted by shutdown", info.name)
        if download.cancelled():
            return 0
        try:
            records = download.result()
        except (TransportError, DecodeError) as exc:
            self._fail(info, exc)
            return 0
        except Exception as exc:  # an unknown library error must not stop the visits
            self._fail(info, exc, unexpected=True)
            return 0
        chosen = self.ledger.select(info.device_id, records)
        topic = self._topic_for(info.device_id)
        for record in chosen:
            await self._publish(topic, history_payload(info, record))
        self.ledger.settle(info.device_id, chosen)
        self._failures.pop(info.device_id, None)
        self._not_before.pop(info.device_id, None)
        if info.device_id in self._failing:
            self._failing.discard(info.device_id)
            _log.info("%s (%s): history downloads again", info.name, info.address)
        if chosen:
            _log.info("%s (%s): filled %d readings from the device's memory (%s .. %s)",
                      info.name, info.address, len(chosen),
                      format_timestamp(chosen[0].timestamp),
                      format_timestamp(chosen[-1].timestamp))
        if self._on_published is not None:
            self._on_published(info, chosen)
        return len(chosen)

    def _fail(self, info: DeviceInfo, exc: BaseException, *, unexpected: bool = False) -> None:
        # the next visit retries at once (a dropped link is common); after that the
        # waits double from RETRY_FIRST up to RETRY_MAX, so a device whose history
        # always fails costs no extra connection at every visit
        failures = self._failures.get(info.device_id, 0) + 1
        self._failures[info.device_id] = failures
        if failures > 1:
            wait = min(RETRY_FIRST * 2 ** (failures - 2), RETRY_MAX)
            self._not_before[info.device_id] = self._wall() + wait
        if info.device_id in self._failing:
            _log.debug("%s: history download failed again: %s", info.name, exc)
            return
        self._failing.add(info.device_id)
        _log.warning("%s (%s): history download failed, next visit tries again: %s",
                     info.name, info.address, exc, exc_info=exc if unexpected else None)


class GapWatch:
    """Pipeline stage: every live reading tells the ledger when the device was last heard.

    It keeps the ledger when a device is stopped (a reload stops and restarts a changed
    device, and its pending gaps must survive that).
    """

    def __init__(
        self, ledger: GapLedger, threshold_for: Callable[[str], timedelta | None]
    ) -> None:
        self._ledger = ledger
        self._threshold_for = threshold_for

    async def handle(self, item: ProcessedReading) -> ProcessedReading:
        device = item.reading.device
        threshold = self._threshold_for(device.device_id)
        if threshold is not None and device.family in HISTORY_FAMILIES:
            gap = self._ledger.observe_live(device.device_id, item.reading.timestamp, threshold)
            if gap is not None:
                _log.info("%s (%s): no reading from %s to %s; filling from its memory",
                          device.name, device.address, format_timestamp(gap.start),
                          format_timestamp(gap.end))
        return item
