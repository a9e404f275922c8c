"""Decoder throughput: frames per second per driver, AES included, on one core.

Each driver decodes a rotating set of real frames (built by the simulator's encoders
from seeded battery readings) for a fixed wall-clock slice. A bare AES block decrypt
is measured in the same run as the baseline, since these machines are shared and noisy.

Then the Victron parsers are compared on the public captures in
tests/protocols/captures/ (every ``victron`` case): how many give a reading with a
voltage, how many of those whose record holds a code victron-ble does not know
(off reason 0x81, 0x88, 0x0C ...) still give one, and their rate. Compared: victron-ble
(``Device.parse``), victron-ble-ha-parser (what Home Assistant's victron_ble integration
uses; measured only when installed: ``pip install victron-ble-ha-parser``) and
battery-hawk's Victron driver (victron-ble behind the unknown-code guard).

Prints tables, then as its last line one JSON object of the figures.

    .venv/bin/python bench/decode.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from battery_hawk.models import Reading
from battery_hawk.protocols import BM2, BM6, BM7, BatteryService, Driver, Victron
from battery_hawk.simulator import frames
from battery_hawk.simulator.battery import BatteryModel, BatteryProfile

TARGET_BM6 = 50_000
FRAMES = 256
VICTRON_KEY = bytes.fromhex("aff4d0995b7d1e176c0c33ecb9e70dcd")
CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "protocols" / "captures"
VICTRON_ID = 0x02E1


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


def victron_captures() -> list[tuple[str, bytes, bytes]]:
    """(case name, key, frame) of every Victron capture in the corpus."""
    out = []
    for path in sorted(CAPTURES.glob("*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        if case.get("kind") == "victron":
            key = bytes.fromhex(case["key"])
            out += [(path.stem, key, bytes.fromhex(f)) for f in case["frames"]]
    return out


def _victron_ble(key: bytes) -> Callable[[bytes], float | None]:
    """victron-ble alone: its parser for the record type, the voltage it gives."""
    from victron_ble.devices import detect_device_type

    parsers: dict[type, Any] = {}

    def parse(frame: bytes) -> float | None:
        kind = detect_device_type(frame)
        if kind is None:
            return None
        parser = parsers.get(kind) or parsers.setdefault(kind, kind(key.hex()))
        try:
            data = parser.parse(frame)
        except ValueError:  # an enum code it does not list: the whole record is lost
            return None
        for getter in ("get_voltage", "get_battery_voltage", "get_output_voltage",
                       "get_output_voltage1", "get_input_voltage"):
            value = getattr(data, getter, None)
            if value is not None and value() is not None:
                return float(value())
        return None

    return parse


def _ha_parser(key: bytes) -> Callable[[bytes], float | None] | None:
    """victron-ble-ha-parser, as Home Assistant calls it (None if not installed)."""
    try:
        from home_assistant_bluetooth import BluetoothServiceInfo
        from victron_ble_ha_parser import VictronBluetoothDeviceData
    except ImportError:
        return None
    logging.getLogger("victron_ble_ha_parser").setLevel(logging.CRITICAL)
    device = VictronBluetoothDeviceData(key.hex())

    def parse(frame: bytes) -> float | None:
        info = BluetoothServiceInfo("bench", "AA:BB:CC:DD:EE:FF", -60, {VICTRON_ID: frame},
                                    {}, [], "local")
        update = device.update(info)
        for entity, value in update.entity_values.items():
            if entity.key in ("voltage", "battery_voltage", "output_voltage",
                              "output_voltage_1", "input_voltage") and value.native_value:
                return float(value.native_value)
        return None

    return parse


def _battery_hawk(key: bytes) -> Callable[[bytes], float | None]:
    driver = Victron(key)

    def parse(frame: bytes) -> float | None:
        reading = driver.decode(frame)
        value = reading.voltage if reading.voltage is not None else reading.aux_voltage
        return value

    return parse


PARSERS: dict[str, Callable[[bytes], Callable[[bytes], float | None] | None]] = {
    "victron-ble": _victron_ble,
    "victron-ble-ha-parser": _ha_parser,
    "battery-hawk": _battery_hawk,
}


def compare_victron(seconds: float) -> dict[str, object]:
    """Captures read, unknown-code captures read, and rate, per Victron parser."""
    captures = victron_captures()
    with_unknown = set()
    for name, key, frame in captures:
        guard = Victron(key)
        guard.decode(frame)
        if guard.unknown_codes:
            with_unknown.add((name, frame))
    results: dict[str, object] = {"victron_captures": len(captures),
                                  "victron_captures_with_unknown_codes": len(with_unknown)}
    print()
    print(f"{'victron parser':<24}{'read':>8}{'unknown read':>14}{'frames/s':>12}")
    installed: dict[str, list[tuple[Callable[[bytes], float | None], bytes]]] = {}
    for label, factory in PARSERS.items():
        parsers = {key: factory(key) for _, key, _ in captures}
        ready = [(parse, frame) for _, key, frame in captures
                 if (parse := parsers[key]) is not None]
        if len(ready) < len(captures):
            print(f"{label:<24}{'not installed':>34}")
            continue
        installed[label] = ready
        read = unknown = 0
        for (name, _, frame), (parse, _) in zip(captures, ready, strict=True):
            if parse(frame) is not None:
                read += 1
                unknown += (name, frame) in with_unknown
        slug = label.replace("-", "_")
        results[f"{slug}_read"] = read
        results[f"{slug}_unknown_read"] = unknown
    # Rates: the parsers take turns over the corpus, one pass each per round, so a
    # shared machine's load changes hit them alike.
    spent = dict.fromkeys(installed, 0.0)
    done = dict.fromkeys(installed, 0)
    deadline = time.perf_counter() + seconds * len(installed)
    while time.perf_counter() < deadline:
        for label, calls in installed.items():
            start = time.perf_counter()
            for parse, frame in calls:
                parse(frame)
            spent[label] += time.perf_counter() - start
            done[label] += len(calls)
    for label in installed:
        slug = label.replace("-", "_")
        fps = done[label] / spent[label]
        results[f"{slug}_fps"] = round(fps)
        got, got_unknown = results[f"{slug}_read"], results[f"{slug}_unknown_read"]
        print(f"{label:<24}{got:>5}/{len(captures):<2}{got_unknown:>9}/{len(with_unknown):<4}"
              f"{fps:>12,.0f}")
    return results


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
    figures: dict[str, object] = {**results, "aes_block_baseline": round(baseline)}
    figures.update(compare_victron(args.seconds))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
