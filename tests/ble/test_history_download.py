"""History downloads over the real bleak BlueZ backend and the fake BlueZ."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from battery_hawk.ble import BleakTransport
from battery_hawk.ble.history import fetch_history
from battery_hawk.errors import ConnectTimeoutError, DecodeError, DeviceDisconnectedError
from battery_hawk.models import Reading
from battery_hawk.protocols import BM2, BM6, BM7, Driver
from battery_hawk.protocols.history import HISTORY_INTERVAL, HistoryRecord
from battery_hawk.simulator.history import StoredRecord
from tests.fakebluez.controller import FakeBlueZ
from tests.fakebluez.history import add_history

ADDR = "AA:BB:CC:DD:EE:21"
AT = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0)
DRIVERS: dict[str, Driver] = {"bm2": BM2(), "bm6": BM6(), "bm7": BM7()}


def _at() -> datetime:
    return AT


async def _fetch(family: str, *, pages: int = 1, timeout: float = 10.0,
                 max_bytes: int = 4096) -> list[HistoryRecord]:
    return await fetch_history(BleakTransport("hci0", connect_timeout=5), ADDR,
                               DRIVERS[family], pages=pages, timeout=timeout,
                               max_bytes=max_bytes, pause=0.05, now=_at)


def _ramp(count: int) -> list[StoredRecord]:
    return [StoredRecord(voltage=round(12.0 + i % 90 / 100, 2), soc=40 + i % 60,
                         temperature=5 + i % 30, kind=i % 2 * 4,
                         min_crank_voltage=round(9.0 + i % 90 / 100, 2))
            for i in range(count)]


@pytest.mark.parametrize("family", ["bm6", "bm7"])
async def test_a_day_of_bm6_bm7_history_arrives_whole(fake_bluez: FakeBlueZ,
                                                      family: str) -> None:
    memory = add_history(fake_bluez, ADDR, family, CAR)
    memory.set_records(_ramp(720))

    records = await _fetch(family, pages=3)

    assert records == [
        HistoryRecord(AT - (719 - i) * HISTORY_INTERVAL, s.voltage, float(s.soc),
                      float(s.temperature), None, s.kind)
        for i, s in enumerate(_ramp(720))
    ]
    assert fake_bluez.device_state(ADDR)["connected"] is False


async def test_bm2_history_arrives_after_the_count(fake_bluez: FakeBlueZ) -> None:
    memory = add_history(fake_bluez, ADDR, "bm2", CAR)
    memory.set_records(_ramp(300))

    records = await _fetch("bm2")

    assert records == [
        HistoryRecord(AT - (299 - i) * HISTORY_INTERVAL, s.voltage, None, None,
                      s.min_crank_voltage, s.kind)
        for i, s in enumerate(_ramp(300))
    ]
    writes = [BM2().decrypt(w) for w in fake_bluez.writes(ADDR)]
    assert [w[:3] for w in writes] == [b"\xe7\x01\x00", b"\xe3\x00\x00"]


@pytest.mark.parametrize("family", ["bm2", "bm6", "bm7"])
async def test_the_fake_clock_adds_a_record_per_2_minutes(fake_bluez: FakeBlueZ,
                                                          family: str) -> None:
    memory = add_history(fake_bluez, ADDR, family, CAR, minutes=10)
    assert len(await _fetch(family)) == 5
    memory.advance(20, Reading(voltage=12.5, soc=70.0, temperature=18.0))
    records = await _fetch(family)
    assert len(records) == 15
    assert [r.voltage for r in records[-10:]] == [12.5] * 10
    assert records[-1].timestamp == AT
    assert records[0].timestamp == AT - timedelta(minutes=28)


@pytest.mark.parametrize("family", ["bm2", "bm6", "bm7"])
async def test_an_empty_memory_gives_no_records(fake_bluez: FakeBlueZ, family: str) -> None:
    add_history(fake_bluez, ADDR, family, CAR)
    assert await _fetch(family) == []


@pytest.mark.parametrize("family", ["bm2", "bm6"])
async def test_a_corrupt_page_is_a_decode_error(fake_bluez: FakeBlueZ, family: str) -> None:
    memory = add_history(fake_bluez, ADDR, family, CAR, minutes=200)
    memory.corrupt_next_page()
    with pytest.raises(DecodeError):
        await _fetch(family)


async def test_a_page_cut_short_times_out_then_the_next_try_succeeds(
    fake_bluez: FakeBlueZ,
) -> None:
    memory = add_history(fake_bluez, ADDR, "bm6", CAR, minutes=200)
    memory.cut_pages()
    with pytest.raises(ConnectTimeoutError, match=r"not finished within 1\.0 s"):
        await _fetch("bm6", timeout=1.0)
    memory.cut_pages(False)
    assert len(await _fetch("bm6")) == 100


async def test_a_dropped_link_ends_the_download_and_the_next_one_resumes(
    fake_bluez: FakeBlueZ,
) -> None:
    add_history(fake_bluez, ADDR, "bm7", CAR, minutes=60)
    fake_bluez.drop_link_on_next_write(ADDR)
    with pytest.raises(DeviceDisconnectedError):
        await _fetch("bm7")
    assert len(await _fetch("bm7")) == 30


async def test_a_bm2_history_over_the_size_bound_is_not_downloaded(
    fake_bluez: FakeBlueZ,
) -> None:
    add_history(fake_bluez, ADDR, "bm2", CAR, minutes=2 * 300)
    with pytest.raises(DecodeError, match="1200 bytes is over the 1000-byte bound"):
        await _fetch("bm2", max_bytes=1000)
    assert len(fake_bluez.writes(ADDR)) == 1  # the count request only, no e3
