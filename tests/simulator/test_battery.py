"""The demo battery model: pure, seeded, plausible."""

from __future__ import annotations

import random

from battery_hawk.models import BatteryState
from battery_hawk.simulator.battery import (
    BatteryModel,
    BatteryProfile,
    Chemistry,
    open_circuit_voltage,
    soc_from_voltage,
)


def run(profile: BatteryProfile, seed: int, steps: int = 600) -> list[tuple[float, ...]]:
    model = BatteryModel(profile, random.Random(seed))
    out = []
    for t in range(steps):
        r = model.step(float(t))
        out.append((r.voltage or 0.0, r.soc or 0.0, r.temperature or 0.0, r.current or 0.0))
    return out


def test_same_seed_gives_the_same_run() -> None:
    assert run(BatteryProfile(), 7) == run(BatteryProfile(), 7)
    assert run(BatteryProfile(), 7) != run(BatteryProfile(), 8)


def test_readings_stay_in_a_12_volt_batterys_range() -> None:
    for chemistry in Chemistry:
        for voltage, soc, temperature, _ in run(BatteryProfile(chemistry=chemistry), 1, 3000):
            assert 9.0 < voltage < 15.0
            assert 0.0 <= soc <= 100.0
            assert -10.0 < temperature < 45.0


def test_charge_and_discharge_alternate_over_a_cycle() -> None:
    currents = [c for *_, c in run(BatteryProfile(cycle_s=200.0), 3, 400)]
    assert any(c > 0 for c in currents) and any(c < 0 for c in currents)


def test_state_says_charging_while_current_flows_in() -> None:
    model = BatteryModel(BatteryProfile(cycle_s=200.0), random.Random(2), soc=50.0)
    for t in range(400):
        reading = model.step(float(t))
        if (reading.current or 0.0) > 0.05:
            assert reading.state is BatteryState.CHARGING


def test_starter_battery_shows_cranking_dips() -> None:
    profile = BatteryProfile(starter=True, crank_every_s=20.0)
    dips = [v for v, *_ in run(profile, 4, 600) if v < 11.0]
    assert dips


def test_time_going_backwards_does_not_rewind_the_charge() -> None:
    model = BatteryModel(BatteryProfile(), random.Random(5), start=100.0, soc=60.0)
    model.step(50.0)
    assert model.soc == 60.0


def test_soc_from_voltage_inverts_the_resting_voltage_curve() -> None:
    for chemistry in Chemistry:
        for soc in (10.0, 35.0, 80.0):
            voltage = open_circuit_voltage(chemistry, soc)
            assert abs(soc_from_voltage(chemistry, voltage) - soc) < 1e-6
