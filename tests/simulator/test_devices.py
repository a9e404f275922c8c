"""SimTransport end to end with the real drivers: connect, poll, notify, read, advertise."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from battery_hawk.errors import DeviceDisconnectedError, DeviceNotFoundError, NotAReading
from battery_hawk.models import Reading
from battery_hawk.protocols import BM2, BM6, BM7, BatteryService, Driver, Victron, identify
from battery_hawk.simulator.devices import (
    SimBM2,
    SimDevice,
    SimLeagendPoll,
    SimTransport,
    build_fleet,
)

WAIT = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def transport(count: int = 10, seed: int = 1) -> SimTransport:
    return SimTransport.with_fleet(count, seed=seed, clock=FakeClock(), bm2_interval=0.001)


def first(t: SimTransport, family: str) -> SimDevice:
    return next(d for d in t.devices.values() if d.family == family)


async def poll(t: SimTransport, device: SimDevice, driver: Driver) -> Reading:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    async with t.connect(device.address) as link:
        assert driver.notify_uuid and driver.write_uuid
        await link.start_notify(driver.notify_uuid, queue.put_nowait)
        await link.write(driver.write_uuid, driver.poll_command())
        while True:
            frame = await asyncio.wait_for(queue.get(), WAIT)
            try:
                return driver.decode(frame)
            except NotAReading:
                continue


@pytest.mark.parametrize(("family", "driver"), [("bm6", BM6), ("bm7", BM7)])
async def test_poll_returns_the_reading_the_battery_had(family: str, driver: type[Driver]) -> None:
    t = transport()
    device = first(t, family)
    reading = await poll(t, device, driver(device.key))
    assert reading.voltage is not None and 9.0 < reading.voltage < 15.0
    assert reading.soc is not None and reading.temperature is not None
    assert reading.state is not None


async def test_echo_before_the_reply_is_skipped() -> None:
    t = transport()
    device = first(t, "bm6")
    assert isinstance(device, SimLeagendPoll)
    device.echo = True
    assert (await poll(t, device, BM6())).voltage is not None


async def test_firmware_request_is_answered() -> None:
    t = transport()
    device = first(t, "bm6")
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    driver = BM6()
    async with t.connect(device.address) as link:
        await link.start_notify(BM6.notify_uuid or "", queue.put_nowait)
        await link.write(BM6.write_uuid or "", driver.firmware_command())
        frame = await asyncio.wait_for(queue.get(), WAIT)
    assert driver.firmware_version(frame) == "01080005"


async def test_bm2_streams_notifications_while_subscribed() -> None:
    t = transport()
    device = first(t, "bm2")
    driver = BM2()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    async with t.connect(device.address) as link:
        await link.start_notify(BM2.notify_uuid or "", queue.put_nowait)
        readings = [driver.decode(await asyncio.wait_for(queue.get(), WAIT)) for _ in range(3)]
        await link.stop_notify(BM2.notify_uuid or "")
    assert all(r.voltage is not None and 9.0 < r.voltage < 15.0 for r in readings)


async def test_bm2_history_download_over_the_link() -> None:
    t = transport()
    device = first(t, "bm2")
    assert isinstance(device, SimBM2)
    device.interval = 3600.0  # keep live packets out of the way
    device.history = [(12.6, 10.2, 0), (12.5, 9.8, 1), (12.4, 0.0, 0)]
    driver = BM2()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    async with t.connect(device.address) as link:
        await link.start_notify(BM2.notify_uuid or "", queue.put_nowait)
        await asyncio.wait_for(queue.get(), WAIT)  # the first live packet
        await link.write(BM2.write_uuid or "", driver.history_count_command())
        count = driver.history_count(await asyncio.wait_for(queue.get(), WAIT))
        await link.write(BM2.write_uuid or "", driver.history_download_command(count))
        got = [await asyncio.wait_for(queue.get(), WAIT) for _ in range(count // 4 + 3)]
    points = driver.history(got, datetime(2026, 1, 1, tzinfo=UTC))
    assert [(p.voltage, p.min_crank_voltage, p.kind) for p in points] == device.history


async def test_victron_adverts_decode_without_connecting() -> None:
    t = transport()
    device = first(t, "victron")
    adverts = {adv.address: adv for adv in await t.scan(1.0)}
    driver = Victron(device.key)
    reading = driver.decode(driver.advert_payload(adverts[device.address]))
    assert reading.voltage is not None and 9.0 < reading.voltage < 15.0


async def test_victron_nonce_changes_between_adverts() -> None:
    t = transport()
    device = first(t, "victron")
    payloads = {
        adv.manufacturer_data[0x02E1]
        for adv in itertools.chain(await t.scan(1.0), await t.scan(1.0))
        if adv.address == device.address
    }
    assert len(payloads) == 2


async def test_battery_service_level_is_read() -> None:
    t = transport()
    device = first(t, "bas")
    async with t.connect(device.address) as link:
        level = await link.read(BatteryService.read_uuid or "")
    reading = BatteryService().decode(level)
    assert reading.soc is not None and 0.0 <= reading.soc <= 100.0


async def test_scan_recognises_every_family() -> None:
    t = transport(count=10)
    seen = {adv.address: identify(adv) for adv in await t.scan(1.0)}
    assert len(seen) == 10
    for address, match in seen.items():
        assert match is not None
        assert match.driver.family == t.devices[address].family


async def test_advertisements_stream_every_device() -> None:
    t = SimTransport.with_fleet(5, advert_interval=0.001)
    stream = t.advertisements()
    got = [await asyncio.wait_for(anext(stream), WAIT) for _ in range(10)]
    await stream.aclose()  # type: ignore[attr-defined]
    assert {a.address for a in got} == set(t.devices)


async def test_a_fleet_advertises_spread_over_the_interval_not_in_one_burst() -> None:
    t = SimTransport.with_fleet(10, advert_interval=0.2)
    stream = t.advertisements()
    loop = asyncio.get_running_loop()
    first = await asyncio.wait_for(anext(stream), WAIT)
    started = loop.time()
    rest = [await asyncio.wait_for(anext(stream), WAIT) for _ in range(9)]
    elapsed = loop.time() - started
    await stream.aclose()  # type: ignore[attr-defined]
    assert {a.address for a in (first, *rest)} == set(t.devices)
    assert elapsed >= 9 * 0.2 / 10 * 0.99  # one device's moment after another's


async def test_dropped_link_ends_the_wait_and_refuses_writes() -> None:
    t = transport()
    device = first(t, "bm6")
    async with t.connect(device.address) as link:
        waiter = asyncio.create_task(link.wait_disconnected(), name="test-wait")
        assert t.drop(device.address) == 1
        await asyncio.wait_for(waiter, WAIT)
        assert not link.is_connected
        with pytest.raises(DeviceDisconnectedError):
            await link.write(BM6.write_uuid or "", BM6().poll_command())


async def test_unreachable_or_unknown_device_is_not_found() -> None:
    t = transport()
    device = first(t, "bm6")
    t.set_reachable(device.address, False)
    with pytest.raises(DeviceNotFoundError):
        async with t.connect(device.address):
            pass
    assert device.address not in {a.address for a in await t.scan(1.0)}
    with pytest.raises(DeviceNotFoundError):
        async with t.connect("00:00:00:00:00:00"):
            pass


def test_fleet_is_deterministic_for_a_seed() -> None:
    a, b = build_fleet(20, seed=3), build_fleet(20, seed=3)
    assert [(d.address, d.family, d.key) for d in a] == [(d.address, d.family, d.key) for d in b]
    assert [d.reading(10.0) for d in a] == [d.reading(10.0) for d in b]
    assert [d.key for d in build_fleet(20, seed=4) if d.family == "victron"] != [
        d.key for d in a if d.family == "victron"
    ]


def test_fleet_of_200_has_every_family_and_unique_addresses() -> None:
    fleet = build_fleet(200)
    assert len({d.address for d in fleet}) == 200
    assert {d.family for d in fleet} == {"bm6", "bm7", "bm2", "victron", "bas"}


async def test_many_devices_poll_concurrently() -> None:
    t = SimTransport.with_fleet(50, seed=9)
    drivers: dict[str, type[Driver]] = {"bm6": BM6, "bm7": BM7}
    targets = [d for d in t.devices.values() if d.family in drivers]
    readings = await asyncio.gather(*(poll(t, d, drivers[d.family](d.key)) for d in targets))
    assert len(readings) == 20 and all(r.voltage is not None for r in readings)
