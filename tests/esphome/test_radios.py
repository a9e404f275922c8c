"""A proxy among the radios of a RadioSet: the device goes to the radio that hears it best,
never to a proxy without a free slot, and back to the proxy when it returns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from battery_hawk.ble.exchange import fetch_reading
from battery_hawk.ble.radios import RadioSet
from battery_hawk.config import EsphomeProxyConfig
from battery_hawk.esphome.radios import add_proxies
from battery_hawk.models import BatteryState, Reading
from battery_hawk.protocols import get_driver
from battery_hawk.simulator.devices import SimTransport
from tests.esphome.conftest import KEY
from tests.fakeesphome.devices import bm6
from tests.fakeesphome.server import FakeEsphomeProxy
from tests.support.brokers import wait_until

DEVICE = "5A:00:00:00:00:01"
READING = Reading(voltage=12.7, soc=80.0, temperature=20.0, state=BatteryState.NORMAL)
WAIT = 10.0


@contextlib.asynccontextmanager
async def listening(radios: RadioSet) -> AsyncIterator[None]:
    """Consume the set's merged adverts, as the daemon's scanner does."""

    async def consume() -> None:
        async for _ in radios.advertisements():
            pass

    task = asyncio.create_task(consume(), name="test-adverts")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def proxy() -> AsyncIterator[FakeEsphomeProxy]:
    async with FakeEsphomeProxy([bm6(DEVICE, READING, rssi=-45)], encryption_key=KEY,
                                advert_interval=0.1) as fake:
        yield fake


async def test_the_device_is_read_through_the_proxy_that_hears_it_best_unless_it_is_full(
    proxy: FakeEsphomeProxy,
) -> None:
    local = SimTransport([bm6(DEVICE, READING, rssi=-90)], advert_interval=0.1)
    radios = RadioSet()
    radios.add_radio("hci0", local)
    (remote,) = add_proxies(radios, [_config(proxy)], connect_timeout=5.0)
    driver = get_driver("bm6")(None)
    try:
        async with listening(radios):
            await wait_until(lambda: radios.hearing(DEVICE).get(remote.name) == -45,
                             timeout=WAIT)
            assert radios.choose(DEVICE)[0] == remote.name
            assert await fetch_reading(radios, DEVICE, driver, WAIT) == READING
            assert (proxy.connects.get(DEVICE), local.connections) == (1, 0)

            proxy.set_busy(proxy.limit)  # Home Assistant holds every slot
            await wait_until(lambda: remote.connections_free == 0, timeout=WAIT)
            assert await fetch_reading(radios, DEVICE, driver, WAIT) == READING
            assert (proxy.connects.get(DEVICE), local.connections) == (1, 1)
    finally:
        await remote.close()


async def test_a_proxy_away_sends_its_devices_to_the_local_radio_and_gets_them_back(
    proxy: FakeEsphomeProxy,
) -> None:
    local = SimTransport([bm6(DEVICE, READING, rssi=-90)], advert_interval=0.1)
    radios = RadioSet()
    radios.add_radio("hci0", local)
    (remote,) = add_proxies(radios, [_config(proxy)], connect_timeout=5.0)
    driver = get_driver("bm6")(None)
    try:
        async with listening(radios):
            await wait_until(lambda: remote.name in radios.hearing(DEVICE), timeout=WAIT)
            await proxy.kill()
            await wait_until(lambda: not remote.available, timeout=WAIT)
            assert await fetch_reading(radios, DEVICE, driver, WAIT) == READING
            assert local.connections == 1
            await proxy.start()
            await remote.wait_ready(WAIT)
            await wait_until(lambda: radios.failing(remote.name) is None, timeout=WAIT)
            connects = proxy.connects.get(DEVICE, 0)
            await wait_until(lambda: radios.choose(DEVICE)[0] == remote.name, timeout=30)
            assert await fetch_reading(radios, DEVICE, driver, WAIT) == READING
            assert proxy.connects.get(DEVICE, 0) == connects + 1
    finally:
        await remote.close()


def _config(proxy: FakeEsphomeProxy) -> EsphomeProxyConfig:
    return EsphomeProxyConfig("127.0.0.1", proxy.port, encryption_key=KEY)
