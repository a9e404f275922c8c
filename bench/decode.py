"""Decoder throughput: frames per second per driver, AES included, on one core.

Each driver decodes a rotating set of real frames (built by the simulator's encoders
from seeded battery readings) for a fixed wall-clock slice. A bare AES block decrypt
is measured in the same run as the baseline, since these machines are shared and noisy.
Prints a table, then as its last line one JSON object of frames per second.

    .venv/bin/python bench/decode.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from battery_hawk.models import Reading
from battery_hawk.protocols import BM2, BM6, BM7, BatteryService, Driver, Victron
from battery_hawk.simulator import frames
from battery_hawk.simulator.battery import BatteryModel, BatteryProfile

TARGET_BM6 = 50_000
FRAMES = 256
VICTRON_KEY = bytes.fromhex("aff4d0995b7d1e176c0c33ecb9e70dcd")


def readings(seed: int) -> list[Reading]:
    model = BatteryModel(BatteryProfile(), random.Random(seed))
    return [model.step(float(t)) for t in range(FRAMES)]


def workloads() -> dict[str, tuple[Driver, list[bytes]]]:
    rs = readings(1)
    return {
        "bm6": (BM6(), [frames.bm6_reply(r) for r in rs]),
        "bm7": (BM7(), [frames.bm6_reply(r, frames.BM7_KEY) for r in rs]),
        "bm2": (BM2(), [frames.bm2_voltage(r.voltage or 0.0, counter=i) for i, r in enumerate(rs)]),
        "victron": (
            Victron(VICTRON_KEY),
            [frames.victron_battery_monitor(r, VICTRON_KEY, i) for i, r in enumerate(rs)],
        ),
        "bas": (BatteryService(), [frames.bas_level(r.soc) for r in rs]),
    }


def rate(decode: Callable[[bytes], object], batch: Sequence[bytes], seconds: float) -> float:
    """Calls per second of decode over batch, repeated for about `seconds`."""
    for frame in batch:  # warm up (and fail loudly on a frame that does not decode)
        decode(frame)
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for frame in batch:
            decode(frame)
        done += len(batch)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time slice per driver")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core, as the target is stated
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    block = Cipher(algorithms.AES(frames.BM6_KEY), modes.ECB()).decryptor()
    baseline = rate(block.update, workloads()["bm6"][1], args.seconds)

    results: dict[str, int] = {}
    print(f"{'driver':<10}{'frames/s':>12}{'vs AES block':>14}")
    print(f"{'aes block':<10}{baseline:>12,.0f}{1.0:>14.2f}")
    for name, (driver, batch) in workloads().items():
        fps = rate(driver.decode, batch, args.seconds)
        results[name] = round(fps)
        print(f"{name:<10}{fps:>12,.0f}{fps / baseline:>14.2f}")
    verdict = "meets" if results["bm6"] >= TARGET_BM6 else "MISSES"
    print(f"bm6 {verdict} the {TARGET_BM6:,}/s target")
    results["aes_block_baseline"] = round(baseline)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
