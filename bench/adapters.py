"""Two adapters over the fake BlueZ: how long a device takes to move when its adapter goes.

Through the real bleak BlueZ backend, a RadioSet of hci0 and hci1 (kept in step with the
fake BlueZ by LocalAdapters, as the daemon does) visits one BM6 back to back; the BM6 is
heard at -88 dBm on hci0 and -47 dBm on hci1. Each run times, wall-clock:

- visit: one visit (connect, request, reply, disconnect) through hci1, the baseline;
- unplugged: from hci1's removal (InterfacesRemoved) to the first reading through hci0;
- plugged_in: from hci1's return (InterfacesAdded) to the first reading through hci1
  again (it must first hear the device);
- switched_off: from hci1 switched off and rfkill-blocked to the first reading through
  hci0 (the visit that finds hci1 off goes on through hci0);
- switched_on: from hci1 switched on again to the first reading through hci1.

The fake answers in microseconds: the figures are the daemon's own reaction (signals,
ranking, retries, discovery) plus bleak's overhead, not a real controller's. Each move
is also given as a ratio to the visit. Prints a table, then as its last line one JSON
object.

    .venv/bin/python bench/adapters.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from battery_hawk.ble import BleakTransport, RadioSet, fetch_reading
from battery_hawk.ble.local import LocalAdapters
from battery_hawk.errors import TransportError
from battery_hawk.models import Reading
from battery_hawk.protocols import BM6
from tests.fakebluez.controller import FakeBlueZ

ADDRESS = "AA:BB:CC:DD:EE:91"
HCI1_MAC = "00:1A:7D:DA:71:02"
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0)
LIMIT = 60.0  # seconds a move may take before the run counts as failed


async def _visit(radios: RadioSet) -> str | None:
    """One visit; the radio that read the device, or None if the visit failed."""
    try:
        await fetch_reading(radios, ADDRESS, BM6(), 5.0)
    except TransportError:
        return None
    return radios.last_radio(ADDRESS)


async def _until_read_through(radios: RadioSet, radio: str, change: Callable[[], None]
                              ) -> float:
    """Seconds from change() to the first reading through radio, visiting back to back."""
    started = time.perf_counter()
    change()
    async with asyncio.timeout(LIMIT):
        while await _visit(radios) != radio:
            pass
    return time.perf_counter() - started


async def one_run(fake: FakeBlueZ) -> dict[str, float]:
    fake.add_adapter("hci1", HCI1_MAC)
    fake.add_bm6(ADDRESS, CAR, rssi=-88)
    fake.hear_on(ADDRESS, "hci1", -47)
    radios = RadioSet()
    local = LocalAdapters(radios, None, lambda name: BleakTransport(name, connect_timeout=5))
    await local.start()

    async def listen() -> None:  # the daemon's scanner: what each adapter hears
        async for _ in radios.advertisements():
            pass

    scanner = asyncio.create_task(listen(), name="bench-adverts")
    try:
        async with asyncio.timeout(LIMIT):
            while await _visit(radios) != "hci1":  # noqa: ASYNC110 - until hci1 heard it
                await asyncio.sleep(0.05)
        started = time.perf_counter()
        assert await _visit(radios) == "hci1"
        figures = {"visit": time.perf_counter() - started}
        figures["unplugged"] = await _until_read_through(
            radios, "hci0", lambda: fake.remove_adapter("hci1"))
        figures["plugged_in"] = await _until_read_through(
            radios, "hci1", lambda: fake.add_adapter("hci1", HCI1_MAC))
        figures["switched_off"] = await _until_read_through(
            radios, "hci0", lambda: fake.set_adapter_power(False, rfkill=True, adapter="hci1"))
        figures["switched_on"] = await _until_read_through(
            radios, "hci1", lambda: fake.set_adapter_power(True, adapter="hci1"))
        return figures
    finally:
        scanner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scanner
        await local.stop()


async def main(runs: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    results: list[dict[str, float]] = []
    for _ in range(runs):
        fake = FakeBlueZ()
        fake.start()
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = fake.bus_address
        try:
            results.append(await one_run(fake))
        finally:
            fake.stop()
    names = list(results[0])
    median = {n: statistics.median(r[n] for r in results) for n in names}
    print(f"{'scenario':<14} {'median s':>9} {'max s':>8} {'x visit':>8}")
    for name in names:
        worst = max(r[name] for r in results)
        print(f"{name:<14} {median[name]:>9.3f} {worst:>8.3f} "
              f"{median[name] / median['visit']:>8.1f}")
    figures: dict[str, float | int] = {f"{n}_s": round(median[n], 3) for n in names}
    figures.update({f"{n}_ratio": round(median[n] / median["visit"], 2)
                    for n in names if n != "visit"})
    figures["runs"] = runs
    print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args().runs))
