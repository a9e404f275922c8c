"""A battery for the demo: charge/discharge cycles, noise, temperature drift, cranking dips.

Pure: time is passed in (seconds, any epoch) and randomness comes from an injected
random.Random, so a seed reproduces a run exactly. Cheap enough for hundreds of devices
stepped once a second.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from battery_hawk.models import BatteryState, Reading

__all__ = [
    "BatteryModel",
    "BatteryProfile",
    "Chemistry",
    "open_circuit_voltage",
    "soc_from_voltage",
]


class Chemistry(StrEnum):
    """The 12 V chemistries the demo simulates."""

    LEAD_ACID = "lead_acid"
    LIFEPO4 = "lifepo4"


# Resting (open-circuit) voltage of a 12 V battery against state of charge, (soc %, V).
# Lead-acid: the usual flooded/AGM table (about 2.12 V/cell full, 1.97 V/cell empty).
# LiFePO4: 4 cells, the flat 3.2-3.35 V/cell plateau with steep ends.
_OCV: Final[dict[Chemistry, tuple[tuple[float, float], ...]]] = {
    Chemistry.LEAD_ACID: (
        (0, 11.80), (10, 11.96), (20, 12.06), (30, 12.20), (40, 12.32), (50, 12.42),
        (60, 12.50), (70, 12.58), (80, 12.64), (90, 12.70), (100, 12.73),
    ),
    Chemistry.LIFEPO4: (
        (0, 10.00), (5, 12.00), (10, 12.80), (20, 12.90), (30, 13.00), (40, 13.05),
        (50, 13.10), (60, 13.15), (70, 13.20), (80, 13.25), (90, 13.30), (100, 13.60),
    ),
}  # fmt: skip

_LOW_VOLTAGE: Final = {Chemistry.LEAD_ACID: 11.9, Chemistry.LIFEPO4: 12.4}


def _interp(table: tuple[tuple[float, float], ...], x: float, *, key: int) -> float:
    xs = [row[key] for row in table]
    ys = [row[1 - key] for row in table]
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def open_circuit_voltage(chemistry: Chemistry, soc: float) -> float:
    """Resting voltage of a 12 V battery at a state of charge (%)."""
    return _interp(_OCV[chemistry], soc, key=0)


def soc_from_voltage(chemistry: Chemistry, voltage: float) -> float:
    """State of charge (%) a resting voltage suggests (what a BM6 reports)."""
    return _interp(_OCV[chemistry], voltage, key=1)


@dataclass(frozen=True, slots=True)
class BatteryProfile:
    """How one simulated battery behaves."""

    chemistry: Chemistry = Chemistry.LEAD_ACID
    capacity_ah: float = 60.0
    cycle_s: float = 1200.0  # one charge + discharge period
    charge_current: float = 8.0  # A while charging (tapers near full)
    load_current: float = 6.0  # A drawn while discharging
    internal_resistance: float = 0.02  # ohm
    ambient_c: float = 18.0
    temperature_swing_c: float = 6.0
    temperature_period_s: float = 3600.0
    noise_v: float = 0.004
    starter: bool = False  # a starter battery: occasional cranking dips
    crank_every_s: float = 300.0
    crank_dip_v: float = 2.4


class BatteryModel:
    """One battery's state; step(now) advances it and returns what a perfect monitor sees."""

    __slots__ = ("_last", "_phase", "_rng", "profile", "soc")

    def __init__(
        self,
        profile: BatteryProfile,
        rng: random.Random,
        *,
        start: float = 0.0,
        soc: float | None = None,
        discharging_first: bool = False,
    ) -> None:
        self.profile = profile
        self._rng = rng
        self._last = start
        if discharging_first:  # the first half cycle from `start` discharges
            self._phase = profile.cycle_s / 2 - start % profile.cycle_s
        else:
            self._phase = rng.random() * profile.cycle_s  # devices out of step with each other
        self.soc = rng.uniform(55.0, 95.0) if soc is None else soc

    def _charging(self, now: float) -> bool:
        half = self.profile.cycle_s / 2
        return ((now + self._phase) // half) % 2 == 0

    def step(self, now: float) -> Reading:
        """Advance to `now` (seconds; earlier times do not rewind) and read the battery."""
        p = self.profile
        dt = max(0.0, now - self._last)
        self._last = max(self._last, now)
        rng = self._rng

        if self._charging(now):
            # Constant current, tapering over the last 15 %.
            current = p.charge_current * min(1.0, max(0.05, (100.0 - self.soc) / 15.0))
        else:
            current = -p.load_current * rng.uniform(0.8, 1.2)
        self.soc = min(100.0, max(0.0, self.soc + current * dt / 36.0 / p.capacity_ah))

        angle = 2 * math.pi * (now + self._phase) / p.temperature_period_s
        temperature = p.ambient_c + p.temperature_swing_c * math.sin(angle) + rng.gauss(0, 0.2)
        # Lead-acid resting voltage drops about 3 mV/K per battery around 25 degC.
        tempco = -0.003 if p.chemistry is Chemistry.LEAD_ACID else -0.001
        voltage = (
            open_circuit_voltage(p.chemistry, self.soc)
            + current * p.internal_resistance
            + tempco * (temperature - 25.0)
            + rng.gauss(0, p.noise_v)
        )
        if p.starter and dt > 0 and rng.random() < min(1.0, dt / p.crank_every_s):
            voltage -= p.crank_dip_v * rng.uniform(0.8, 1.1)
            current = -rng.uniform(150.0, 350.0)

        if current > 0.05:
            state = BatteryState.CHARGING
        elif voltage < _LOW_VOLTAGE[p.chemistry]:
            state = BatteryState.LOW_VOLTAGE
        else:
            state = BatteryState.DISCHARGING
        remaining = None
        if current < 0:
            remaining = round(self.soc / 100 * p.capacity_ah / -current * 60.0)
        return Reading(
            voltage=round(voltage, 2),
            soc=round(self.soc, 1),
            temperature=round(temperature, 1),
            current=round(current, 3),
            power=round(voltage * current, 1),
            consumed_ah=round((self.soc - 100.0) / 100 * p.capacity_ah, 1),
            remaining_mins=float(min(remaining, 0xFFFE)) if remaining is not None else None,
            state=state,
        )
