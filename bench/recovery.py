"""BLE trouble over the fake BlueZ: what an absorbed error and a healed adapter cost.

Through the real bleak BlueZ backend, each scenario runs N times on a fresh fake:

- clean: connect and poll a BM6 (the baseline);
- in_progress: the first Connect answers "Failed: Operation already in progress"; the
  retry policy absorbs it (one backoff of 0.25 s +-20 %);
- stuck: the adapter answers InProgress to every Connect until it is power-cycled; the
  transport power-cycles it over D-Bus after 3 failures and the same read goes through;
- silent: discovery runs but hears nothing; with `silence` set to 1 s the watchdog
  power-cycles the adapter and the first advertisement arrives.

Times are wall-clock from the call to the reading (or advertisement). The fake answers
in microseconds, so the figures are the policy's own delays plus bleak's overhead, not
a real controller's. Prints a table, then as its last line one JSON object.

    .venv/bin/python bench/recovery.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from battery_hawk.ble import BleakTransport, read_reading
from battery_hawk.ble.recovery import RecoverySettings
from battery_hawk.models import Reading
from battery_hawk.protocols import BM6
from tests.fakebluez.controller import FakeBlueZ

ADDRESS = "AA:BB:CC:DD:EE:81"
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0)


async def read_bm6(transport: BleakTransport) -> Reading:
    async with transport.connect(ADDRESS) as link:
        return await read_reading(link, BM6(), timeout=5)


async def clean(fake: FakeBlueZ) -> None:
    await read_bm6(BleakTransport("hci0", connect_timeout=10))


async def in_progress(fake: FakeBlueZ) -> None:
    fake.fail_next_connect(ADDRESS, "org.bluez.Error.Failed",
                           message="Operation already in progress")
    await read_bm6(BleakTransport("hci0", connect_timeout=10))


async def stuck(fake: FakeBlueZ) -> None:
    fake.set_adapter_stuck("in-progress")
    await read_bm6(BleakTransport("hci0", connect_timeout=10))
    assert fake.adapter_state()["power_log"] == ["off", "on"]


async def silent(fake: FakeBlueZ) -> None:
    fake.set_adapter_stuck("silent")
    adverts = BleakTransport("hci0", recovery=RecoverySettings(silence=1.0)).advertisements()
    try:
        async with asyncio.timeout(20):
            await anext(adverts)
    finally:
        await adverts.aclose()  # type: ignore[attr-defined]
    assert fake.adapter_state()["power_log"] == ["off", "on"]


SCENARIOS: dict[str, Callable[[FakeBlueZ], Awaitable[None]]] = {
    "clean": clean, "in_progress": in_progress, "stuck": stuck, "silent": silent,
}


def run(name: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        fake = FakeBlueZ()
        fake.start()
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = fake.bus_address
        try:
            fake.add_bm6(ADDRESS, CAR)
            started = time.perf_counter()
            asyncio.run(SCENARIOS[name](fake))
            times.append(time.perf_counter() - started)
        finally:
            fake.stop()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the recoveries' own warnings are expected
    results = {}
    print(f"{'scenario':<12} {'median s':>9} {'max s':>7}  runs")
    for name in SCENARIOS:
        times = run(name, args.runs)
        results[name] = {"median_s": round(statistics.median(times), 3),
                         "max_s": round(max(times), 3)}
        print(f"{name:<12} {results[name]['median_s']:>9.3f} {results[name]['max_s']:>7.3f}"
              f"  {args.runs}")
    print(json.dumps({"runs": args.runs, **results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
