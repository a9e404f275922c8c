"""EsphomeTransport against the fake proxy: reads, adverts, slots, keys, a proxy that goes
away or hangs. Every wait is bounded."""

from __future__ import annotations

import asyncio
import logging

import pytest

from battery_hawk.ble.exchange import fetch_reading, wait_for_advert_reading
from battery_hawk.errors import (
    AdapterNotReadyError,
    AuthenticationFailedError,
    ConnectTimeoutError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    OutOfSlotsError,
    TransportError,
)
from battery_hawk.models import BatteryState, Reading
from battery_hawk.protocols import get_driver
from tests.esphome.conftest import KEY, OTHER_KEY, TransportFactory
from tests.fakeesphome.devices import bas, bm2, bm6, victron
from tests.fakeesphome.server import FEATURES, FakeEsphomeProxy
from tests.support.brokers import wait_until

BM6 = "5A:00:00:00:00:01"
BAS = "5A:00:00:00:00:02"
SHUNT = "5A:00:00:00:00:03"
BM2 = "5A:00:00:00:00:04"
SHUNT_KEY = bytes.fromhex("aff4d0995b7d1e176c0c33ecb9e70dcd")
READING = Reading(voltage=12.84, soc=87.0, temperature=21.0, state=BatteryState.NORMAL)
WAIT = 10.0


async def heard(transport: object, address: str) -> None:
    await wait_until(lambda: transport.rssi(address) is not None, timeout=WAIT)  # type: ignore[attr-defined]


@pytest.mark.parametrize("key", [None, KEY], ids=["plaintext", "noise"])
async def test_a_bm6_is_read_through_the_proxy(make_transport: TransportFactory,
                                               key: str | None) -> None:
    async with FakeEsphomeProxy([bm6(BM6, READING)], encryption_key=key) as proxy:
        transport = await make_transport(proxy, encryption_key=key)
        info = await transport.wait_ready(WAIT)
        await heard(transport, BM6)
        reading = await fetch_reading(transport, BM6, get_driver("bm6")(None), WAIT)
        assert reading == READING
        assert (info.name, info.mac, proxy.connects[BM6]) == ("fake-proxy",
                                                             "AA:BB:CC:00:00:01", 1)
        # the link was closed: the proxy has every slot free again
        await wait_until(lambda: proxy.free == proxy.limit == transport.connections_free,
                         timeout=WAIT)


async def test_a_battery_service_level_is_read_through_the_proxy(
    make_transport: TransportFactory,
) -> None:
    async with FakeEsphomeProxy([bas(BAS, 64.0)]) as proxy:
        transport = await make_transport(proxy)
        await heard(transport, BAS)
        assert await fetch_reading(transport, BAS, get_driver("bas")(None), WAIT) == Reading(
            soc=64.0)


async def test_a_bm2_stream_is_read_through_the_proxy_once_its_cccd_is_written(
    make_transport: TransportFactory,
) -> None:
    async with FakeEsphomeProxy([bm2(BM2, 12.91)]) as proxy:
        transport = await make_transport(proxy)
        await heard(transport, BM2)
        reading = await fetch_reading(transport, BM2, get_driver("bm2")(None), WAIT)
    assert reading.voltage == 12.91


async def test_a_victron_advert_is_heard_through_the_proxy(
    make_transport: TransportFactory,
) -> None:
    shunt = Reading(voltage=13.2, current=-2.5, soc=91.0, consumed_ah=-4.2,
                    state=BatteryState.DISCHARGING)
    async with FakeEsphomeProxy([victron(SHUNT, SHUNT_KEY, shunt, rssi=-77)]) as proxy:
        transport = await make_transport(proxy)
        adv, reading = await wait_for_advert_reading(transport, SHUNT,
                                                     get_driver("victron")(SHUNT_KEY), WAIT)
    assert (adv.rssi, reading) == (-77, shunt)
    assert proxy.connects == {}


async def test_a_proxy_without_free_slots_is_not_asked_to_connect(
    make_transport: TransportFactory,
) -> None:
    async with FakeEsphomeProxy([bm6(BM6, READING)], slots=2) as proxy:
        transport = await make_transport(proxy)
        await heard(transport, BM6)
        proxy.set_busy(2)  # Home Assistant holds both slots
        await wait_until(lambda: transport.connections_free == 0, timeout=WAIT)
        with pytest.raises(OutOfSlotsError, match="every connection slot"):
            async with transport.connect(BM6):
                pass
        assert proxy.connects == {}
        proxy.set_busy(1)
        await wait_until(lambda: transport.connections_free == 1, timeout=WAIT)
        assert await fetch_reading(transport, BM6, get_driver("bm6")(None), WAIT) == READING


async def test_a_proxy_that_refuses_for_want_of_a_slot_says_it_is_full(
    make_transport: TransportFactory,
) -> None:
    async with FakeEsphomeProxy([bm6(BM6, READING)], slots=2) as proxy:
        transport = await make_transport(proxy)
        await heard(transport, BM6)
        proxy.busy = 2  # taken behind our back: the count we hold still says 2 free
        with pytest.raises(OutOfSlotsError, match="no free connection slot"):
            async with transport.connect(BM6):
                pass


async def test_a_killed_proxy_drops_the_link_and_is_reconnected(
    make_transport: TransportFactory,
) -> None:
    async with FakeEsphomeProxy([bm6(BM6, READING)], encryption_key=KEY) as proxy:
        transport = await make_transport(proxy, encryption_key=KEY)
        await heard(transport, BM6)
        async with transport.connect(BM6) as link:
            await proxy.kill()
            async with asyncio.timeout(WAIT):
                await link.wait_disconnected()
            with pytest.raises(DeviceDisconnectedError):
                await link.write("0000fff3-0000-1000-8000-00805f9b34fb", b"\x00" * 16)
        await wait_until(lambda: not transport.available, timeout=WAIT)
        with pytest.raises(AdapterNotReadyError, match="not connected"):
            async with transport.connect(BM6):
                pass
        await proxy.start()  # back on the same port
        await transport.wait_ready(WAIT)
        assert transport.sessions == 2
        await heard(transport, BM6)
        assert await fetch_reading(transport, BM6, get_driver("bm6")(None), WAIT) == READING


async def test_a_proxy_that_drops_every_session_at_once_is_retried_ever_more_slowly(
    make_transport: TransportFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "battery_hawk.esphome")
    async with FakeEsphomeProxy([bm6(BM6, READING)]) as proxy:
        proxy.flapping = True
        loop = asyncio.get_running_loop()
        began = loop.time()
        await make_transport(proxy)  # backoff 50 ms doubling to 0.5 s, jitter 10 %
        await wait_until(lambda: proxy.sessions >= 5, timeout=WAIT)
        # a reset after every session would wait 4 x 50 ms for the fifth session; the
        # backoff grows instead: at least 0.9 x (0.05 + 0.1 + 0.2 + 0.4) s in all
        assert loop.time() - began >= 0.9 * 0.75, proxy.sessions
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(said) == 2, said  # the first drop, then that they keep dropping


async def test_a_hung_proxy_costs_a_connect_its_timeout_and_is_dropped_by_keepalive(
    make_transport: TransportFactory,
) -> None:
    async with FakeEsphomeProxy([bm6(BM6, READING)]) as proxy:
        transport = await make_transport(proxy, keepalive=0.5, connect_timeout=0.3)
        await heard(transport, BM6)
        proxy.hang()
        async with asyncio.timeout(WAIT):  # bounded by the transport, not by this guard
            with pytest.raises(ConnectTimeoutError):
                async with transport.connect(BM6):
                    pass
        # 4.5 keepalive periods without a pong end the session (aioesphomeapi)
        await wait_until(lambda: not transport.available, timeout=WAIT)
        await proxy.kill()
        await proxy.start()
        await transport.wait_ready(WAIT)
        assert transport.sessions == 2


async def test_a_wrong_key_fails_clearly(make_transport: TransportFactory) -> None:
    async with FakeEsphomeProxy(encryption_key=KEY) as proxy:
        transport = await make_transport(proxy, encryption_key=OTHER_KEY)
        with pytest.raises(AuthenticationFailedError, match="encryption_key"):
            await transport.wait_ready(2.0)
        assert proxy.refused_keys >= 1
        with pytest.raises(AdapterNotReadyError, match="refused the encryption key"):
            async with transport.connect(BM6):
                pass


async def test_a_plaintext_transport_is_told_to_set_the_key(
    make_transport: TransportFactory,
) -> None:
    async with FakeEsphomeProxy(encryption_key=KEY) as proxy:
        transport = await make_transport(proxy)
        with pytest.raises(AuthenticationFailedError, match="requires encryption"):
            await transport.wait_ready(2.0)


async def test_a_passive_proxy_is_heard_but_never_connects(
    make_transport: TransportFactory,
) -> None:
    passive = FEATURES & ~0x02  # no ACTIVE_CONNECTIONS: `bluetooth_proxy: active: false`
    async with FakeEsphomeProxy([bm6(BM6, READING)], features=passive) as proxy:
        transport = await make_transport(proxy)
        await heard(transport, BM6)
        assert transport.connections_free == 0
        with pytest.raises(AdapterNotReadyError, match="active: true"):
            async with transport.connect(BM6):
                pass


async def test_a_device_the_proxy_never_heard_is_not_found(
    make_transport: TransportFactory,
) -> None:
    async with FakeEsphomeProxy([bm6(BM6, READING)]) as proxy:
        proxy.rssi[BM6] = None  # out of this proxy's range
        transport = await make_transport(proxy)
        await transport.wait_ready(WAIT)
        with pytest.raises(DeviceNotFoundError, match="has not heard"):
            async with transport.connect(BM6):
                pass


async def test_a_device_that_drops_its_link_ends_wait_disconnected(
    make_transport: TransportFactory,
) -> None:
    async with FakeEsphomeProxy([bm6(BM6, READING)]) as proxy:
        transport = await make_transport(proxy)
        await heard(transport, BM6)
        async with transport.connect(BM6) as link:
            assert link.is_connected
            proxy.drop_device(BM6)
            async with asyncio.timeout(WAIT):
                await link.wait_disconnected()
            assert not link.is_connected
        await wait_until(lambda: proxy.free == proxy.limit, timeout=WAIT)


async def test_an_unreachable_device_fails_with_the_proxys_reason(
    make_transport: TransportFactory,
) -> None:
    device = bm6(BM6, READING)
    async with FakeEsphomeProxy([device]) as proxy:
        transport = await make_transport(proxy)
        await heard(transport, BM6)
        device.reachable = False
        with pytest.raises(TransportError, match="failed to establish"):
            async with transport.connect(BM6):
                pass


async def test_a_proxy_serving_another_client_is_reported_silent(
    make_transport: TransportFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeEsphomeProxy([bm6(BM6, READING)]) as proxy:
        first = await make_transport(proxy)  # Home Assistant, say
        await heard(first, BM6)
        second = await make_transport(proxy, advert_silence=0.3)
        await second.wait_ready(WAIT)
        await wait_until(lambda: "forwards them to one API client only" in caplog.text,
                         timeout=WAIT)
        assert proxy.refused_subscriptions == 1
        assert second.rssi(BM6) is None
