"""The coordinator's exchange helpers (ble/exchange.py) over SimTransport: every family."""

from __future__ import annotations

import pytest

from battery_hawk.ble.exchange import fetch_reading
from battery_hawk.ble.link import Transport
from battery_hawk.protocols import get_driver
from battery_hawk.simulator.devices import SimTransport


@pytest.mark.parametrize("family", ["bm6", "bm7", "bm2", "victron", "bas"])
async def test_fetch_reading_works_for_every_simulated_family(family: str) -> None:
    sim = SimTransport.with_fleet(10, seed=5, advert_interval=0.01, bm2_interval=0.01)
    transport: Transport = sim  # SimTransport fulfils the Transport protocol
    device = next(d for d in sim.devices.values() if d.family == family)
    driver = get_driver(family)(device.key)
    reading = await fetch_reading(transport, device.address, driver, timeout=5.0)
    if family == "bas":
        assert reading.soc is not None
    else:
        assert reading.voltage is not None and 9.0 < reading.voltage < 15.0
