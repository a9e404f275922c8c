"""History downloads: parse rate of a 24 h history, and radio hold time over the fake BlueZ.

For each family (BM2, BM6, BM7) a 24 h memory (720 records, 2 minutes apart) is built
with the simulator's encoders and parsed from its encrypted notifications repeatedly
for a fixed slice: records per second, AES included. Then the same memory is served by
the fake BlueZ and downloaded through the real bleak BlueZ backend; the time from
connect to disconnect is how long one full download holds the radio (the fake sends a
notification every 5 ms, so this is the fake's pace, not a real monitor's: a real BM6
page of 65 blocks at a 7.5-30 ms connection interval is of the same order). Prints a
table, then as its last line one JSON object.

    .venv/bin/python bench/history.py [--seconds 2] [--downloads 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from battery_hawk.models import Reading
from battery_hawk.protocols import BM2, BM6, BM7, Driver
from battery_hawk.protocols.history import (
    HISTORY_INTERVAL,
    MAX_PAGES,
    history_session,
    pages_for,
)
from battery_hawk.simulator.history import (
    StoredRecord,
    bm2_history_notifications,
    leagend_history_notifications,
)

RECORDS = 720  # 24 h at one record per 2 minutes
ADDRESSES = {"bm2": "AA:BB:CC:DD:EE:71", "bm6": "AA:BB:CC:DD:EE:72", "bm7": "AA:BB:CC:DD:EE:73"}
AT = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)


def memory() -> list[StoredRecord]:
    return [StoredRecord(voltage=round(12.2 + i % 70 / 100, 2), soc=40 + i % 60,
                         temperature=10 + i % 15, min_crank_voltage=10.5)
            for i in range(RECORDS)]


def conversation(driver: Driver) -> list[bytes]:
    """Every notification of one full download, in order."""
    stored = memory()
    assert driver.key is not None
    if driver.family == "bm2":
        count, notes = bm2_history_notifications(stored, driver.key)
        return [count, *notes]
    return leagend_history_notifications(stored, MAX_PAGES, driver.key,
                                         blocks_per_notification=4)


def parse_rate(driver: Driver, seconds: float) -> float:
    """Records per second: a fresh session fed the whole conversation, then parsed."""
    notes = conversation(driver)
    pages = pages_for(RECORDS * HISTORY_INTERVAL)
    done = 0
    start = time.perf_counter()
    while True:
        session = history_session(driver, pages)
        for note in notes:
            session.feed(note)
        records = session.records(AT)
        if len(records) != RECORDS:
            raise SystemExit(f"{driver.family}: parsed {len(records)} records, not {RECORDS}")
        done += len(records)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


async def hold_times(drivers: dict[str, Driver], downloads: int) -> dict[str, float]:
    """Median seconds from connect to disconnect of one full download per family."""
    from battery_hawk.ble.history import fetch_history
    from battery_hawk.ble.transport import BleakTransport
    from tests.fakebluez.controller import FakeBlueZ
    from tests.fakebluez.history import add_history

    fake = FakeBlueZ()
    fake.start()
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = fake.bus_address
    try:
        for family, address in ADDRESSES.items():
            add_history(fake, address, family, Reading(voltage=12.6)).set_records(memory())
        transport = BleakTransport("hci0", connect_timeout=10)
        result = {}
        for family, driver in drivers.items():
            times = []
            for _ in range(downloads):
                start = time.perf_counter()
                records = await fetch_history(transport, ADDRESSES[family], driver,
                                              pages=MAX_PAGES, timeout=30, pause=0.05)
                times.append(time.perf_counter() - start)
                if len(records) != RECORDS:
                    raise SystemExit(f"{family}: downloaded {len(records)} records")
            result[family] = statistics.median(times)
        return result
    finally:
        fake.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="parse time slice")
    parser.add_argument("--downloads", type=int, default=3, help="downloads per family")
    args = parser.parse_args()
    drivers: dict[str, Driver] = {"bm2": BM2(), "bm6": BM6(), "bm7": BM7()}
    rates = {family: parse_rate(driver, args.seconds) for family, driver in drivers.items()}
    holds = asyncio.run(hold_times(drivers, args.downloads))
    print(f"{'family':<8}{'records':>9}{'records/s':>12}{'parse ms':>10}{'radio held s':>14}")
    results: dict[str, dict[str, float]] = {}
    for family in drivers:
        ms = RECORDS / rates[family] * 1000
        print(f"{family:<8}{RECORDS:>9}{rates[family]:>12,.0f}{ms:>10.2f}{holds[family]:>14.2f}")
        results[family] = {"records_per_s": round(rates[family]),
                           "radio_hold_s": round(holds[family], 3)}
    print("radio held: connect, BM2 pause 0.05 s, download at the fake's 5 ms per notification")
    print(json.dumps({"records": RECORDS, **results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
