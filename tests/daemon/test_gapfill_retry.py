"""GapFiller's retry policy and gap expiry, with a small fake transport (no radio)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from battery_hawk.errors import DeviceNotFoundError
from battery_hawk.history.gapfill import MEMORY, GapFiller, GapLedger
from battery_hawk.models import Advertisement, DeviceInfo
from battery_hawk.protocols import BM6

INFO = DeviceInfo("car", "AA:BB:CC:DD:EE:01", "Car", "BM6", "Leagend", "bm6")
MIN = timedelta(minutes=1)


class Unreachable:
    """A Transport whose every connect fails, counting the attempts."""

    def __init__(self) -> None:
        self.connects = 0

    @contextlib.asynccontextmanager
    async def connect(self, address: str, *, timeout: float | None = None) -> AsyncIterator[None]:
        self.connects += 1
        raise DeviceNotFoundError(f"{address}: not seen")
        yield  # pragma: no cover

    async def _none(self) -> AsyncIterator[Advertisement]:
        return
        yield  # pragma: no cover

    def advertisements(self) -> AsyncIterator[Advertisement]:
        return self._none()

    async def scan(self, timeout: float) -> list[Advertisement]:
        return []


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def _nothing(_topic: str, _payload: bytes) -> None:
    return None


def _filler(tmp_path: Path, clock: Clock) -> GapFiller:
    ledger = GapLedger(tmp_path)
    ledger.observe_live("car", clock.now - 20 * MIN, 3 * MIN)
    ledger.observe_live("car", clock.now, 3 * MIN)
    return GapFiller(ledger, _nothing, lambda did: did, stop=asyncio.Event(), wall=clock)


async def test_a_failed_download_is_retried_at_once_then_after_growing_waits(
    tmp_path: Path,
) -> None:
    clock, radio = Clock(), Unreachable()
    filler = _filler(tmp_path, clock)
    visit = lambda: filler.visit(radio, INFO.address, BM6(), INFO)  # noqa: E731

    assert await visit() == 0 and filler.due("car")  # first failure: the next visit retries
    assert await visit() == 0 and not filler.due("car")  # second: wait 30 s
    assert await visit() == 0 and radio.connects == 2  # no connection while waiting
    clock.now += 30 * timedelta(seconds=1)
    assert filler.due("car")
    await visit()  # third failure: wait 60 s
    clock.now += 59 * timedelta(seconds=1)
    assert not filler.due("car")
    clock.now += timedelta(seconds=1)
    assert filler.due("car") and radio.connects == 3
    assert len(filler.ledger.pending("car")) == 1  # the gap waits for a working download


async def test_a_gap_beyond_the_device_memory_is_given_up(tmp_path: Path) -> None:
    clock, radio = Clock(), Unreachable()
    filler = _filler(tmp_path, clock)
    clock.now += MEMORY + MIN
    assert await filler.visit(radio, INFO.address, BM6(), INFO) == 0
    assert filler.ledger.pending("car") == () and radio.connects == 0
    assert not filler.due("car")
