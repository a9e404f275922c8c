"""ESPHome proxies: reads and adverts through the fake proxy, and reconnection after a restart.

Everything runs on loopback against tests/fakeesphome (our own proxy speaking the native
API), so the figures are the cost of the API, its framing and Noise on this machine, not
of a real ESP32's radio or Wi-Fi:

- BM6 reads: sequential visits (connect, list services, subscribe, write, notification,
  disconnect) through an EsphomeTransport, plaintext and Noise, against the same visits
  through the simulator's in-process SimTransport, measured in the same run (the ratio
  is the API's overhead);
- adverts: a proxy forwarding 100 devices every 50 ms; advertisements decoded per second;
- reconnect: the proxy is killed, left away for a moment and started again; seconds from
  its restart until the transport's session is up again, with the production backoff
  (1 s doubling to 60 s, +-20 %), so it depends on where the backoff stands.

Prints a table, then as its last line one JSON object.

    .venv/bin/python bench/esphome.py [--reads 200] [--seconds 3] [--restarts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from battery_hawk.ble.exchange import fetch_reading
from battery_hawk.ble.link import Transport
from battery_hawk.config import EsphomeProxyConfig
from battery_hawk.esphome import EsphomeTransport
from battery_hawk.models import BatteryState, Reading
from battery_hawk.protocols import get_driver
from battery_hawk.simulator.devices import SimTransport
from tests.fakeesphome.devices import bm6
from tests.fakeesphome.server import FakeEsphomeProxy
from tests.support.brokers import wait_until

KEY = base64.b64encode(bytes(range(32))).decode()
ADDRESS = "5A:00:00:00:00:01"
READING = Reading(voltage=12.7, soc=80.0, temperature=20.0, state=BatteryState.NORMAL)
WAIT = 10.0


async def reads_per_s(transport: Transport, reads: int) -> float:
    driver = get_driver("bm6")(None)
    started = time.perf_counter()
    for _ in range(reads):
        if await fetch_reading(transport, ADDRESS, driver, WAIT) != READING:
            raise AssertionError("a read through the proxy came back different")
    return reads / (time.perf_counter() - started)


async def proxy_reads(key: str | None, reads: int) -> float:
    async with FakeEsphomeProxy([bm6(ADDRESS, READING)], encryption_key=key) as proxy:
        config = EsphomeProxyConfig("127.0.0.1", proxy.port, encryption_key=key)
        async with EsphomeTransport(config) as transport:
            await transport.wait_ready(WAIT)
            await wait_until(lambda: transport.rssi(ADDRESS) is not None, WAIT)
            return await reads_per_s(transport, reads)


async def advert_rate(seconds: float) -> float:
    devices = [bm6(f"5A:00:00:00:01:{i:02X}", READING, rssi=-50 - i % 40) for i in range(100)]
    async with FakeEsphomeProxy(devices, advert_interval=0.05) as proxy:
        config = EsphomeProxyConfig("127.0.0.1", proxy.port)
        async with EsphomeTransport(config) as transport:
            await transport.wait_ready(WAIT)
            count = 0
            adverts = transport.advertisements()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(seconds):
                    async for _ in adverts:
                        count += 1
            except TimeoutError:
                pass
            finally:
                await adverts.aclose()  # type: ignore[attr-defined]
            return count / (time.perf_counter() - started)


async def reconnect_times(restarts: int) -> list[float]:
    times = []
    async with FakeEsphomeProxy([bm6(ADDRESS, READING)], encryption_key=KEY) as proxy:
        config = EsphomeProxyConfig("127.0.0.1", proxy.port, encryption_key=KEY)
        async with EsphomeTransport(config, rng=random.Random(7)) as transport:
            await transport.wait_ready(WAIT)
            for _ in range(restarts):
                sessions = transport.sessions
                await proxy.kill()
                await wait_until(lambda: not transport.available, WAIT)
                await asyncio.sleep(0.5)  # away for a moment
                await proxy.start()
                started = time.perf_counter()
                await wait_until(lambda n=sessions: transport.sessions > n, 120.0)
                times.append(time.perf_counter() - started)
    return times


async def bench(args: argparse.Namespace) -> dict[str, float]:
    local = SimTransport([bm6(ADDRESS, READING)])
    baseline = await reads_per_s(local, args.reads)
    plain = await proxy_reads(None, args.reads)
    noise = await proxy_reads(KEY, args.reads)
    adverts = await advert_rate(args.seconds)
    restarts = await reconnect_times(args.restarts)
    return {"sim_reads_per_s": round(baseline), "plain_reads_per_s": round(plain),
            "noise_reads_per_s": round(noise), "noise_ratio": round(noise / plain, 2),
            "plain_ms_per_read": round(1000 / plain, 2),
            "noise_ms_per_read": round(1000 / noise, 2),
            "adverts_per_s": round(adverts),
            "reconnect_median_s": round(statistics.median(restarts), 2),
            "reconnect_max_s": round(max(restarts), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200, help="BM6 visits per transport")
    parser.add_argument("--seconds", type=float, default=3.0, help="advert slice")
    parser.add_argument("--restarts", type=int, default=3, help="proxy restarts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the restarts' own warnings are expected
    r = asyncio.run(bench(args))
    print(f"{'BM6 visits':<28}{'per s':>10}{'ms each':>10}")
    print(f"{'simulator (in process)':<28}{r['sim_reads_per_s']:>10,}"
          f"{1000 / r['sim_reads_per_s']:>10.2f}")
    print(f"{'proxy, plaintext':<28}{r['plain_reads_per_s']:>10,}{r['plain_ms_per_read']:>10.2f}")
    print(f"{'proxy, Noise':<28}{r['noise_reads_per_s']:>10,}{r['noise_ms_per_read']:>10.2f}")
    print(f"adverts decoded: {r['adverts_per_s']:,}/s (100 devices every 50 ms)")
    print(f"reconnect after a restart: median {r['reconnect_median_s']} s, "
          f"max {r['reconnect_max_s']} s ({args.restarts} restarts, production backoff)")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
