"""GapFiller over the real bleak backend and the fake BlueZ: fill, resume, shut down."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from battery_hawk.ble import BleakTransport
from battery_hawk.history.gapfill import GapFiller, GapLedger
from battery_hawk.models import DeviceInfo, Reading
from battery_hawk.protocols import BM2, BM6, BM7, Driver
from tests.fakebluez.controller import FakeBlueZ
from tests.fakebluez.history import add_history
from tests.support.brokers import wait_until

ADDR = "AA:BB:CC:DD:EE:41"
INFO = DeviceInfo("car", ADDR, "Car", "BM6", "Leagend", "bm6")
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0)
MIN = timedelta(minutes=1)
THRESHOLD = timedelta(minutes=3)


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, object]]] = []

    async def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, json.loads(payload)))

    def stamps(self) -> list[datetime]:
        return [datetime.fromisoformat(str(d["timestamp"]).replace("Z", "+00:00"))
                for _, d in self.messages]


def _filler(tmp_path: Path, published: Published, stop: asyncio.Event | None = None,
            timeout: float = 10.0) -> GapFiller:
    return GapFiller(GapLedger(tmp_path), published, lambda did: f"p/device/{did}/readings",
                     stop=stop or asyncio.Event(), timeout=timeout, pause=0.05)


def _gap(filler: GapFiller, minutes: int) -> tuple[datetime, datetime]:
    end = datetime.now(UTC)
    start = end - minutes * MIN
    filler.ledger.observe_live("car", start, THRESHOLD)
    filler.ledger.observe_live("car", end, THRESHOLD)
    return start, end


async def _visit(filler: GapFiller, driver: Driver) -> int:
    return await filler.visit(BleakTransport("hci0", connect_timeout=5), ADDR, driver, INFO)


async def test_a_20_minute_gap_gets_its_2_minute_points_once(
    fake_bluez: FakeBlueZ, tmp_path: Path
) -> None:
    add_history(fake_bluez, ADDR, "bm6", CAR, minutes=60)
    published = Published()
    filler = _filler(tmp_path, published)
    start, end = _gap(filler, 20)

    assert await _visit(filler, BM6()) == 9
    stamps = published.stamps()
    assert all(start + MIN <= ts <= end - MIN for ts in stamps)
    assert {b - a for a, b in itertools.pairwise(stamps)} == {2 * MIN}
    assert {t for t, _ in published.messages} == {"p/device/car/readings"}
    assert all(d["source"] == "history" and "seq" not in d for _, d in published.messages)
    assert filler.ledger.pending("car") == ()

    assert await _visit(filler, BM6()) == 0  # settled: never twice
    assert len(published.messages) == 9


async def test_bm2_and_bm7_gaps_are_filled_too(fake_bluez: FakeBlueZ, tmp_path: Path) -> None:
    devices: list[tuple[str, str, Driver]] = [
        ("AA:BB:CC:DD:EE:43", "bm2", BM2()), ("AA:BB:CC:DD:EE:44", "bm7", BM7())
    ]
    for address, family, driver in devices:
        add_history(fake_bluez, address, family, CAR, minutes=40)
        published = Published()
        filler = _filler(tmp_path / family, published)
        _gap(filler, 10)
        transport = BleakTransport("hci0", connect_timeout=5)
        assert await filler.visit(transport, address, driver, INFO) == 4, family
        assert len(published.messages) == 4


async def test_a_dropped_link_publishes_nothing_and_the_next_visit_resumes(
    fake_bluez: FakeBlueZ, tmp_path: Path
) -> None:
    add_history(fake_bluez, ADDR, "bm6", CAR, minutes=60)
    published = Published()
    filler = _filler(tmp_path, published)
    _gap(filler, 20)
    fake_bluez.drop_link_on_next_write(ADDR)

    assert await _visit(filler, BM6()) == 0
    assert published.messages == []
    assert len(filler.ledger.pending("car")) == 1

    restarted = _filler(tmp_path, published)  # pending gaps survive a restart too
    assert await _visit(restarted, BM6()) == 9


async def test_shutdown_interrupts_a_download_at_once(
    fake_bluez: FakeBlueZ, tmp_path: Path
) -> None:
    memory = add_history(fake_bluez, ADDR, "bm6", CAR, minutes=60)
    memory.cut_pages()  # the device goes quiet mid-page: the download would run its timeout
    published = Published()
    stop = asyncio.Event()
    filler = _filler(tmp_path, published, stop, timeout=600.0)
    _gap(filler, 20)

    visit = asyncio.create_task(_visit(filler, BM6()))
    await wait_until(lambda: fake_bluez.writes(ADDR), timeout=20)  # the request went out
    stop.set()
    assert await asyncio.wait_for(visit, 20) == 0  # far inside the download's 600 s
    assert published.messages == []
    assert len(filler.ledger.pending("car")) == 1
    await wait_until(lambda: not fake_bluez.device_state(ADDR)["connected"], timeout=20)
