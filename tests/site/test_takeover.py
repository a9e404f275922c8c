"""A device this gateway takes over from another is visited at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from battery_hawk.config import DeviceConfig
from battery_hawk.coordinator import DeviceCoordinator
from battery_hawk.protocols import get_driver
from battery_hawk.simulator.devices import SimTransport
from battery_hawk.storage import SeqStore
from tests.daemon.test_coordinator import Clock, RecordingSink
from tests.support.brokers import wait_until


async def test_a_device_taken_over_is_visited_at_once_not_at_its_next_slot(
        tmp_path: Path) -> None:
    """Several gateways: the coordinator of a device this gateway does not own waits; once
    it owns it, take_over() brings the visit forward (poll_interval is an hour here)."""
    clock = Clock()
    transport = SimTransport.with_fleet(5, clock=clock)
    device = next(d for d in transport.devices.values() if d.family == "bm6")
    config = DeviceConfig(address=device.address, type="bm6", poll_interval=3600)
    sink = RecordingSink()
    owned = False
    coordinator = DeviceCoordinator(config, get_driver("bm6")(None), transport, sink,
                                    SeqStore(tmp_path), clock=clock, may_read=lambda: owned)
    stop = asyncio.Event()
    loop = asyncio.create_task(coordinator.run(stop), name="test-coordinator")
    try:
        await asyncio.sleep(0.05)
        assert sink.readings == []  # not ours: no visit
        owned = True
        coordinator.take_over()
        await wait_until(lambda: len(sink.readings) == 1, timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 10)


async def test_a_reading_from_a_visit_during_which_the_device_was_taken_over_is_dropped(
        tmp_path: Path) -> None:
    """The other gateway reads the device from the moment it took it over: a visit that
    was under way here must not publish too, or the device has two readers."""
    clock = Clock()
    transport = SimTransport.with_fleet(5, clock=clock)
    device = next(d for d in transport.devices.values() if d.family == "bm6")
    config = DeviceConfig(address=device.address, type="bm6", poll_interval=3600)
    sink = RecordingSink()
    asked: list[bool] = []

    def may_read() -> bool:  # owned when the visit starts, taken over before it ends
        asked.append(True)
        return len(asked) == 1

    coordinator = DeviceCoordinator(config, get_driver("bm6")(None), transport, sink,
                                    SeqStore(tmp_path), clock=clock, may_read=may_read)
    stop = asyncio.Event()
    loop = asyncio.create_task(coordinator.run(stop), name="test-coordinator")
    try:
        await wait_until(lambda: coordinator.status.last_error is None and len(asked) >= 2
                         and transport.connections > 0, timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 10)
    assert sink.readings == []
