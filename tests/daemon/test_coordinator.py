"""The per-device coordinator over simulated devices: stamping, availability, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from battery_hawk.config import DeviceConfig
from battery_hawk.coordinator import AUTO_REFRESH, DeviceCoordinator, offline_after
from battery_hawk.errors import (
    AdapterNotReadyError,
    BluetoothUnavailableError,
    OutOfSlotsError,
    RadioStartingError,
    TransportError,
)
from battery_hawk.models import Advertisement, DeviceInfo, DeviceReading, Reading
from battery_hawk.protocols import get_driver
from battery_hawk.simulator import frames
from battery_hawk.simulator.devices import SimLink, SimTransport
from battery_hawk.storage import SeqStore
from tests.support.brokers import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingSink:
    def __init__(self) -> None:
        self.readings: list[DeviceReading] = []
        self.availability: list[tuple[str, bool]] = []
        self.errors: list[tuple[str, str]] = []

    async def on_reading(self, reading: DeviceReading) -> None:
        self.readings.append(reading)

    async def on_availability(self, device: DeviceInfo, online: bool) -> None:
        self.availability.append((device.device_id, online))

    def on_error(self, device: DeviceInfo, kind: str) -> None:
        self.errors.append((device.device_id, kind))


def make(tmp_path: Path, family: str, *, poll: float = 60.0, store: SeqStore | None = None
         ) -> tuple[DeviceCoordinator, SimTransport, RecordingSink, Clock]:
    clock = Clock()
    transport = SimTransport.with_fleet(5, clock=clock)
    device = next(d for d in transport.devices.values() if d.family == family)
    config = DeviceConfig(address=device.address, type=family, name="Test", poll_interval=poll,
                          key=device.key if family == "victron" else None)
    sink = RecordingSink()
    coordinator = DeviceCoordinator(config, get_driver(family)(config.key), transport, sink,
                                    store or SeqStore(tmp_path), connect_timeout=2.0, clock=clock)
    return coordinator, transport, sink, clock


@pytest.mark.parametrize("family", ["bm6", "bm7", "bm2", "bas"])
async def test_each_poll_publishes_a_stamped_reading_with_growing_seq(
    tmp_path: Path, family: str
) -> None:
    coordinator, _, sink, _ = make(tmp_path, family)
    for _ in range(3):
        assert await coordinator.poll_once() is not None
    assert [r.seq for r in sink.readings] == [1, 2, 3]
    assert all(r.device.family == family for r in sink.readings)
    assert sink.availability == [(coordinator.info.device_id, True)]


async def test_passive_device_publishes_at_most_once_per_poll_interval(tmp_path: Path) -> None:
    coordinator, transport, sink, clock = make(tmp_path, "victron", poll=30.0)
    adverts = [a for a in await transport.scan(1) if a.address == coordinator.config.address]
    assert await coordinator.feed(adverts[0]) is not None
    assert await coordinator.feed(adverts[0]) is None  # too soon
    clock.now += 30
    assert await coordinator.feed(adverts[0]) is not None
    assert [r.seq for r in sink.readings] == [1, 2]
    assert sink.readings[0].rssi == adverts[0].rssi


async def test_adverts_a_little_early_or_late_still_give_one_reading_per_interval(
    tmp_path: Path,
) -> None:
    coordinator, transport, sink, clock = make(tmp_path, "victron", poll=1.0)
    advert = next(a for a in await transport.scan(1) if a.address == coordinator.config.address)
    jitter = random.Random(7)
    start = clock.now
    while clock.now - start < 100.0:  # an advert every 0.4 s or so for 100 s
        await coordinator.feed(advert)
        clock.now += 0.4 + jitter.uniform(-0.05, 0.05)
    assert 99 <= len(sink.readings) <= 101  # "1 s since the last" would give about 80


async def test_unreachable_device_goes_offline_once_then_online_with_next_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    coordinator, transport, sink, clock = make(tmp_path, "bm6", poll=10.0)
    did = coordinator.info.device_id
    await coordinator.poll_once()
    transport.set_reachable(coordinator.config.address, False)
    caplog.set_level(logging.INFO, logger="battery_hawk.coordinator")
    for _ in range(20):  # 200 s of failed polls
        clock.now += 10
        assert await coordinator.poll_once() is None
        await coordinator.check_availability()
    assert offline_after(10.0) == 180.0
    assert sink.availability == [(did, True), (did, False)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # one warning when polls start failing, one when the device is declared offline
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    transport.set_reachable(coordinator.config.address, True)
    clock.now += 400  # past the circuit breaker's recovery timeout
    assert await coordinator.poll_once() is not None
    assert sink.availability[-1] == (did, True)
    assert "reads again" in caplog.text and "online again" in caplog.text


async def test_circuit_breaker_stops_polling_a_dead_device(tmp_path: Path) -> None:
    coordinator, transport, sink, clock = make(tmp_path, "bm6", poll=10.0)
    transport.set_reachable(coordinator.config.address, False)
    for _ in range(10):
        clock.now += 10
        await coordinator.poll_once()
    # five failures open the breaker; later polls do not touch the radio
    assert len(sink.errors) == 5
    assert coordinator.status.transport_errors == 5


class AwayRadio(SimTransport):
    """A radio that is away (a proxy gone, an adapter off): every connect fails so."""

    def __init__(self, inner: SimTransport, error: TransportError) -> None:
        super().__init__(inner.devices.values(), clock=inner._clock)
        self.error: TransportError | None = error

    def connect(self, address: str, *, timeout: float | None = None
                ) -> AbstractAsyncContextManager[SimLink]:
        if self.error is not None:
            raise self.error
        return super().connect(address, timeout=timeout)


@pytest.mark.parametrize("error", [AdapterNotReadyError("proxy 10.0.0.5:6053: not connected"),
                                   BluetoothUnavailableError("no adapter hci1"),
                                   OutOfSlotsError("proxy 10.0.0.5:6053: no free slot")])
async def test_a_radio_away_or_full_does_not_open_the_devices_breaker(
    tmp_path: Path, error: TransportError
) -> None:
    clock = Clock()
    away = AwayRadio(SimTransport.with_fleet(5, clock=clock), error)
    device = next(d for d in away.devices.values() if d.family == "bm6")
    config = DeviceConfig(address=device.address, type="bm6", name="Test", poll_interval=10.0)
    sink = RecordingSink()
    coordinator = DeviceCoordinator(config, get_driver("bm6")(None), away, sink,
                                    SeqStore(tmp_path), connect_timeout=2.0, clock=clock)
    for _ in range(10):
        clock.now += 10
        assert await coordinator.poll_once() is None
    assert coordinator.breaker_state == "closed"
    # said as the radio's trouble: not a sign that the phone app holds the device
    assert sink.errors == [(coordinator.info.device_id, "radio")] * 10
    away.error = None  # the radio is back: the very next poll reads
    clock.now += 10
    assert await coordinator.poll_once() is not None


@pytest.mark.parametrize("error", [RadioStartingError("proxy 10.0.0.5:6053: still connecting"),
                                   AdapterNotReadyError("proxy 10.0.0.5:6053: not connected")])
async def test_a_visit_that_found_no_radio_ready_is_tried_again_soon(
    tmp_path: Path, error: TransportError, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()  # stands still: every wait of the loop is its poll-interval schedule
    away = AwayRadio(SimTransport.with_fleet(5, clock=clock), error)
    device = next(d for d in away.devices.values() if d.family == "bm6")
    config = DeviceConfig(address=device.address, type="bm6", name="Test", poll_interval=3600)
    sink = RecordingSink()
    coordinator = DeviceCoordinator(config, get_driver("bm6")(None), away, sink,
                                    SeqStore(tmp_path), connect_timeout=2.0, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(coordinator.run(stop))
    try:
        await wait_until(lambda: coordinator.status.last_error is not None, timeout=5)
        away.error = None  # the radio is up: read within seconds, not an hour later
        await wait_until(lambda: sink.readings, timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    starting = isinstance(error, RadioStartingError)
    # a radio still coming up is no failure: nothing counted, nothing said
    assert (len(sink.errors), bool(caplog.records)) == ((0, False) if starting else (1, True))


async def test_seq_continues_after_restart(tmp_path: Path) -> None:
    store = SeqStore(tmp_path)
    coordinator, *_ = make(tmp_path, "bm6", store=store)
    await coordinator.poll_once()
    await coordinator.poll_once()
    store.close()  # a clean stop
    again, _, sink2, _ = make(tmp_path, "bm6")
    await again.poll_once()
    assert sink2.readings[0].seq == 3


class BrokenTransport(SimTransport):
    """A transport with a bug we did not foresee: connecting raises a plain RuntimeError."""

    def connect(self, address: str, *, timeout: float | None = None):  # type: ignore[override]
        raise RuntimeError("unforeseen")


async def test_an_unexpected_error_is_logged_once_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    transport = BrokenTransport.with_fleet(1, clock=clock)
    device = next(iter(transport.devices.values()))
    config = DeviceConfig(address=device.address, type="bm6", poll_interval=10.0)
    sink = RecordingSink()
    coordinator = DeviceCoordinator(config, get_driver("bm6")(), transport, sink,
                                    SeqStore(tmp_path), clock=clock)
    for _ in range(3):
        clock.now += 10
        assert await coordinator.poll_once() is None
    assert coordinator.status.transport_errors == 3
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "unforeseen" in caplog.text


class FailingSink(RecordingSink):
    async def on_reading(self, reading: DeviceReading) -> None:
        raise ValueError("downstream bug")


async def test_a_failing_sink_does_not_stop_the_coordinator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    coordinator, *_ = make(tmp_path, "bm6")
    coordinator._sink = FailingSink()
    assert await coordinator.poll_once() is not None
    assert await coordinator.poll_once() is not None
    assert "handing on a reading failed" in caplog.text


async def test_a_victron_device_is_announced_under_its_product_name(tmp_path: Path) -> None:
    coordinator, transport, sink, _ = make(tmp_path, "victron")
    assert coordinator.info.model == "Victron"  # before the first advert
    adverts = [a for a in await transport.scan(1) if a.address == coordinator.config.address]
    assert await coordinator.feed(adverts[0]) is not None
    assert coordinator.info.model not in ("Victron", "")
    assert sink.readings[0].device.model == coordinator.info.model


def _leagend(tmp_path: Path, family: str, mode: str, poll: float = 60.0
             ) -> tuple[DeviceCoordinator, SimTransport, RecordingSink, Clock]:
    coordinator, transport, sink, clock = make(tmp_path, family, poll=poll)
    coordinator.config = dataclasses.replace(coordinator.config, mode=mode)
    return coordinator, transport, sink, clock


def _advert(coordinator: DeviceCoordinator, volts: float, soc: float) -> Advertisement:
    family = coordinator.driver.family
    data = frames.leagend_advert(Reading(voltage=volts, soc=soc), coordinator.config.address,
                                 coordinator.driver.key or b"", mac_reversed=family == "bm2")
    return Advertisement(coordinator.config.address, rssi=-70, manufacturer_data=data)


@pytest.mark.parametrize("family", ["bm6", "bm2"])
async def test_a_passive_leagend_device_reads_its_adverts_without_connecting(
    tmp_path: Path, family: str
) -> None:
    coordinator, _, sink, _ = _leagend(tmp_path, family, "passive")
    assert coordinator.passive and coordinator.listens
    reading = await coordinator.feed(_advert(coordinator, 12.71, 64.0))
    assert reading == Reading(voltage=12.71, soc=64.0)
    assert [r.rssi for r in sink.readings] == [-70]


async def test_auto_fills_what_adverts_lack_from_the_last_connection_and_connects_rarely(
    tmp_path: Path,
) -> None:
    coordinator, _, sink, clock = _leagend(tmp_path, "bm6", "auto", poll=30.0)
    assert not coordinator.passive and coordinator.listens
    assert coordinator._visit_due()  # nothing yet: connect
    connected = await coordinator.poll_once()
    assert connected is not None and connected.temperature is not None
    clock.now += 30
    reading = await coordinator.feed(_advert(coordinator, 12.5, 70.0))
    assert reading is not None
    assert (reading.voltage, reading.soc) == (12.5, 70.0)
    assert reading.temperature == connected.temperature  # from the connection
    assert not coordinator._visit_due()  # adverts flow and the connection is fresh
    clock.now += AUTO_REFRESH * 30
    await coordinator.feed(_advert(coordinator, 12.4, 69.0))
    assert sink.readings[-1].reading.temperature is None  # too old to fill in
    assert coordinator._visit_due()  # time for a connection


async def test_poll_mode_ignores_adverts(tmp_path: Path) -> None:
    coordinator, _, _, _ = _leagend(tmp_path, "bm6", "poll")
    assert not coordinator.listens and coordinator._visit_due()


async def test_bm7_adverts_are_not_decoded_so_auto_keeps_connecting(tmp_path: Path) -> None:
    coordinator, _, _, _ = _leagend(tmp_path, "bm7", "auto")
    assert not coordinator.listens and coordinator._visit_due()
