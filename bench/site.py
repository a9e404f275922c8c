"""Several gateways on one site: 3 `battery-hawk run` gateways, 60 simulated devices.

Each gateway runs over its own fake BlueZ that holds all the devices (half Victron
instant-readout adverts, half BM6 read over a connection), and hears each device with
its own RSSI: every device has one gateway that hears it 15 dB better than the others.
One mosquitto; an independent subscriber counts what arrives.

* readings/s delivered on `.../readings` over a steady window, and how many of the 60
  devices were read by more than one gateway in it (target 0);
* ownership changes per minute in that window (accepted claims, target 0);
* failover: the gateway that owns the most devices is killed (SIGKILL: its socket
  closes and the broker sends its Last Will at once); then the next one is cut off
  without a word (its TCP link frozen and new ones refused, as by a power cut or a
  pulled cable: only the lease runs out). For
  each of their devices, the time until another gateway claims it (median and max, in
  seconds and in lease periods), and until its first reading from there (a BM6 is read
  every 20 s; a device taken over is visited at once).

    .venv/bin/python bench/site.py [--seconds 60] [--lease 6] [--devices 60]

Prints a table, then as its last line one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from battery_hawk.models import Reading
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber
from tests.support.site import Gateway

GATEWAYS = ("g1", "g2", "g3")
KEY = bytes.fromhex("0df4d0395b7d1a876c0c33ecb9e70dcd")


def address(index: int) -> str:
    return f"C8:47:80:01:{index // 256:02X}:{index % 256:02X}"


def device_id(index: int) -> str:
    return address(index).replace(":", "").lower()


def plan(count: int) -> tuple[list[dict[str, object]], dict[str, str]]:
    """The device list, and which gateway hears each device best."""
    devices: list[dict[str, object]] = []
    best: dict[str, str] = {}
    for index in range(count):
        victron = index % 2 == 0
        device: dict[str, object] = {"address": address(index),
                                     "type": "victron" if victron else "bm6",
                                     "poll_interval": 1 if victron else 20}
        if victron:
            device["key"] = KEY.hex()
        devices.append(device)
        best[device_id(index)] = GATEWAYS[index % len(GATEWAYS)]
    return devices, best


def populate(name: str, count: int, best: dict[str, str]) -> object:
    def add(fake: FakeBlueZ) -> None:
        for index in range(count):
            rssi = -55 if best[device_id(index)] == name else -70 - 3 * GATEWAYS.index(name)
            if index % 2 == 0:
                fake.add_victron(address(index), KEY, Reading(voltage=13.1, current=-2.0,
                                                              soc=80.0), rssi=rssi)
            else:
                fake.add_bm6(address(index), Reading(voltage=12.6, soc=75, temperature=20.0),
                             rssi=rssi)
    return add


class Tally(Subscriber):
    """Readings and claims as they arrive, each with its arrival time (monotonic s)."""

    def __init__(self, port: int) -> None:
        super().__init__(port, "battery_hawk/#")
        self.records: list[tuple[float, str, str]] = []  # (at, device_id, gateway)
        self.claim_times: list[tuple[float, str, str]] = []  # (at, device_id, gateway)

    async def _read(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in client.messages:
                at, topic = time.monotonic(), message.topic.value
                if topic.endswith("/readings") or "/site/lease/" in topic:
                    doc = json.loads(bytes(message.payload))
                    if topic.endswith("/readings"):
                        self.records.append((at, doc["device_id"], doc["gateway"]))
                    elif doc["action"] == "claim":
                        self.claim_times.append((at, topic.rsplit("/", 1)[-1], doc["gateway"]))
                self.messages.append((topic, b""))
                self._arrived.set()

    def readings(self, since: float = 0.0) -> list[tuple[float, str, str]]:
        return [r for r in self.records if r[0] >= since]

    def claims(self, since: float, until: float) -> int:
        return sum(1 for at, _, _ in self.claim_times if since <= at < until)


async def run(seconds: float, lease: float, count: int) -> dict[str, object]:
    devices, best = plan(count)
    workdir = Path(tempfile.mkdtemp(prefix="bench-site-"))
    broker = Mosquitto()
    broker.start()
    sub = tally = Tally(broker.port)
    await sub.start()
    gateways = {name: Gateway(name, workdir, broker.port) for name in GATEWAYS}
    try:
        for name, gateway in gateways.items():
            await gateway.start(devices, lease, populate(name, count, best))  # type: ignore[arg-type]
        started = time.monotonic()
        await sub.wait_for(lambda _: len({d for _, d, _ in tally.records}) == count,
                           timeout=300)
        all_read = time.monotonic() - started
        await asyncio.sleep(3 * lease)  # handovers of the start-up settle down

        window_start = time.monotonic()
        await asyncio.sleep(seconds)
        window_end = time.monotonic()
        window = [r for r in tally.readings(window_start) if r[0] < window_end]
        readers: dict[str, set[str]] = defaultdict(set)
        for _, did, reader in window:
            readers[did].add(reader)
        changes = tally.claims(window_start, window_end)
        owners = Counter(next(iter(g)) for g in readers.values() if len(g) == 1)
        on_best = sum(1 for did, g in readers.items() if g == {best[did]})

        ranked = [name for name, _ in owners.most_common()]
        # a crash: the process dies, its socket closes, the broker sends its Last Will
        crash, crash_read = await failover(tally, ranked[0], readers, lease,
                                           gateways[ranked[0]].kill)
        # a power cut or a pulled cable: nothing is said, the lease runs out
        silent, silent_read = await failover(tally, ranked[1], readers, lease,
                                gateways[ranked[1]].cut_off)
    except BaseException:
        for name, gateway in gateways.items():
            lines = [line for line in gateway.log if "site" in line or "MQTT" in line]
            print(f"--- {name}", *lines[-40:], sep="\n", file=sys.stderr)
        raise
    finally:
        for gateway in gateways.values():
            await gateway.stop()
        await sub.stop()
        broker.close()
    return {
        "gateways": len(GATEWAYS), "devices": count, "lease_s": lease,
        "all_read_after_s": round(all_read, 1),
        "window_s": round(window_end - window_start, 1),
        "readings_per_s": round(len(window) / (window_end - window_start), 1),
        "devices_with_two_readers": sum(1 for g in readers.values() if len(g) > 1),
        "devices_on_best_gateway": on_best,
        "ownership_changes_per_min": round(changes * 60 / (window_end - window_start), 2),
        "failover_devices": len(crash),
        "failover_median_s": round(statistics.median(crash), 2),
        "failover_max_s": round(max(crash), 2),
        "failover_max_leases": round(max(crash) / lease, 2),
        "failover_read_max_s": round(max(crash_read), 2),
        "silent_failover_devices": len(silent),
        "silent_failover_median_s": round(statistics.median(silent), 2),
        "silent_failover_max_s": round(max(silent), 2),
        "silent_failover_max_leases": round(max(silent) / lease, 2),
        "silent_failover_read_max_s": round(max(silent_read), 2),
    }


async def failover(tally: Tally, victim: str, readers: dict[str, set[str]], lease: float,
                   strike: Callable[[], None]) -> tuple[list[float], list[float]]:
    """Seconds from ``strike()`` to each of the victim's devices being claimed, and read,
    by another gateway."""
    victims = {did for did, g in readers.items() if g == {victim}}
    struck = time.monotonic()
    strike()
    try:
        await tally.wait_for(lambda _: victims <= {
            d for _, d, g in tally.readings(struck) if g != victim}, timeout=20 * lease)
    except TimeoutError:
        moved = {d for _, d, g in tally.readings(struck) if g != victim}
        print(f"{victim}: {len(victims - moved)} of {len(victims)} devices not read "
              f"elsewhere within {20 * lease:.0f} s: {sorted(victims - moved)}",
              file=sys.stderr)
        raise
    read = [min(at for at, d, g in tally.readings(struck) if d == did and g != victim)
            - struck for did in victims]
    claimed = [min(at for at, d, g in tally.claim_times if at >= struck and d == did
                   and g != victim) - struck for did in victims]
    return claimed, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="steady window (s)")
    parser.add_argument("--lease", type=float, default=6.0, help="site.lease_seconds")
    parser.add_argument("--devices", type=int, default=60)
    args = parser.parse_args()
    result = asyncio.run(run(args.seconds, args.lease, args.devices))
    rows = [
        ("gateways / devices", f"{result['gateways']} / {result['devices']}"),
        ("every device read after", f"{result['all_read_after_s']} s"),
        ("readings delivered", f"{result['readings_per_s']} /s over {result['window_s']} s"),
        ("devices with two readers", str(result["devices_with_two_readers"])),
        ("devices on their best gateway", str(result["devices_on_best_gateway"])),
        ("ownership changes (steady)", f"{result['ownership_changes_per_min']} /min"),
        ("crash: claimed elsewhere, median / max", f"{result['failover_median_s']} / "
         f"{result['failover_max_s']} s ({result['failover_max_leases']} leases of "
         f"{result['lease_s']} s), {result['failover_devices']} devices"),
        ("crash: first reading elsewhere, max", f"{result['failover_read_max_s']} s"),
        ("silent: claimed elsewhere, median / max", f"{result['silent_failover_median_s']} / "
         f"{result['silent_failover_max_s']} s ({result['silent_failover_max_leases']} "
         f"leases), {result['silent_failover_devices']} devices"),
        ("silent: first reading elsewhere, max", f"{result['silent_failover_read_max_s']} s"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
