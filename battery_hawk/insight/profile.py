"""Battery profiles: chemistry and nominal voltage, their alert defaults and rest-voltage SoC.

A profile scales per-cell figures to the bank: a 12 V lead-acid battery has 6 cells of
2 V, a 12 V LiFePO4 battery 4 cells of 3.2 V, a "12 V" Li-ion pack 3 cells of 3.6-3.7 V.

Rest-voltage tables (open-circuit voltage after several hours without current, about
25 °C) are approximations from public sources, per cell:

- flooded lead-acid: the commonly published 12 V table also found in rvsystems.net
  "Batteries state of charge" (2017) and in BU-903 of Battery University ("How to Measure
  State-of-charge"): 12.7 V full, about 12.06 V at 50 %, 11.3 V at 10 %;
- AGM and gel: Discover Battery, "How can you tell if a battery is fully charged?",
  Table 5 "State of Charge vs. OCV" (flooded / gel / AGM columns): AGM 12.8 / 12.6 / 12.3
  / 12.0 / 11.8 V and gel 12.85 / 12.65 / 12.35 / 12.0 / 11.8 V at 100 / 75 / 50 / 25 / 0 %;
- LiFePO4: gridwright.com "LiFePO4 voltage chart" and voltagebasics.com "LiFePO4 Battery
  Voltage Chart": 3.40 V a cell (13.6 V) full at rest, 3.30 V (13.2 V) about 40 %,
  3.20 V (12.8 V) about 20 %, 3.0 V (12.0 V) about 10 %, 2.5 V empty. The curve is flat
  between 20 and 90 %, so the estimate there is coarse;
- Li-ion (NMC/NCA): 4.20 V a cell full; above 40 % the resting-voltage fit
  SoC = 100 (0.1966 + sqrt(0.0387 - 1.4523 (3.7835 - V))) published on
  candlepowerforums.com ("Li-ion Capacity vs. Voltage", 2007); below that the curve varies
  by maker, and 3.3 V is taken as empty.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["NOMINAL_VOLTAGES", "BatteryProfile", "Chemistry"]

NOMINAL_VOLTAGES: Final = (12, 24, 36, 48)


class Chemistry(StrEnum):
    """Battery chemistries; the value is the config word."""

    LEAD_ACID = "lead_acid"
    AGM = "agm"
    GEL = "gel"
    LIFEPO4 = "lifepo4"
    LI_ION = "li_ion"


# cells in series for each nominal voltage
_CELLS: Final[dict[Chemistry, dict[int, int]]] = {
    Chemistry.LEAD_ACID: {12: 6, 24: 12, 36: 18, 48: 24},
    Chemistry.AGM: {12: 6, 24: 12, 36: 18, 48: 24},
    Chemistry.GEL: {12: 6, 24: 12, 36: 18, 48: 24},
    Chemistry.LIFEPO4: {12: 4, 24: 8, 36: 12, 48: 16},
    Chemistry.LI_ION: {12: 3, 24: 7, 36: 10, 48: 13},
}


_Table = tuple[tuple[float, float], ...]


def _per_cell(table: _Table, cells: int) -> _Table:
    return tuple((volts / cells, soc) for volts, soc in table)


# (volts per cell at rest, SoC %), rising; sources in the module docstring
_REST: Final[dict[Chemistry, tuple[tuple[float, float], ...]]] = {
    Chemistry.LEAD_ACID: _per_cell((
        (10.50, 0.0), (11.31, 10.0), (11.58, 20.0), (11.75, 30.0), (11.90, 40.0),
        (12.06, 50.0), (12.20, 60.0), (12.32, 70.0), (12.42, 80.0), (12.50, 90.0),
        (12.70, 100.0),
    ), 6),
    Chemistry.AGM: _per_cell((
        (11.80, 0.0), (12.00, 25.0), (12.30, 50.0), (12.60, 75.0), (12.80, 100.0),
    ), 6),
    Chemistry.GEL: _per_cell((
        (11.80, 0.0), (12.00, 25.0), (12.35, 50.0), (12.65, 75.0), (12.85, 100.0),
    ), 6),
    Chemistry.LIFEPO4: (
        (2.50, 0.0), (3.00, 10.0), (3.20, 20.0), (3.25, 30.0), (3.30, 40.0),
        (3.32, 70.0), (3.35, 90.0), (3.40, 100.0),
    ),
    Chemistry.LI_ION: (
        (3.30, 0.0), (3.50, 5.0), (3.60, 12.0), (3.70, 25.0), (3.80, 45.0),
        (3.85, 56.0), (3.90, 65.0), (4.00, 79.0), (4.10, 90.0), (4.20, 100.0),
    ),
}

# Per-cell low-voltage alert default: lead 1.967 V (11.8 V for 12 V, about 30 % at rest),
# LiFePO4 3.0 V (12.0 V, about 10 %), Li-ion 3.4 V (10.2 V for 3 cells, under 10 %).
_LOW_PER_CELL: Final[dict[Chemistry, float]] = {
    Chemistry.LEAD_ACID: 11.8 / 6,
    Chemistry.AGM: 11.8 / 6,
    Chemistry.GEL: 11.8 / 6,
    Chemistry.LIFEPO4: 3.0,
    Chemistry.LI_ION: 3.4,
}

# Lithium cells must not be charged below 0 °C (lithium plating); lead-acid may be.
_CHARGE_MIN_C: Final[dict[Chemistry, float | None]] = {
    Chemistry.LEAD_ACID: None,
    Chemistry.AGM: None,
    Chemistry.GEL: None,
    Chemistry.LIFEPO4: 0.0,
    Chemistry.LI_ION: 0.0,
}

# Lead-acid is commonly rated to 50-60 °C; lithium packs' BMSs cut off at 50-60 °C in
# discharge and lower in charge, so they warn earlier.
_HIGH_C: Final[dict[Chemistry, float]] = {
    Chemistry.LEAD_ACID: 55.0,
    Chemistry.AGM: 55.0,
    Chemistry.GEL: 55.0,
    Chemistry.LIFEPO4: 50.0,
    Chemistry.LI_ION: 50.0,
}


@dataclass(frozen=True, slots=True)
class BatteryProfile:
    """A battery's chemistry and nominal voltage (12, 24, 36 or 48 V)."""

    chemistry: Chemistry = Chemistry.LEAD_ACID
    nominal_voltage: int = 12

    def __post_init__(self) -> None:
        object.__setattr__(self, "chemistry", Chemistry(self.chemistry))
        if self.nominal_voltage not in NOMINAL_VOLTAGES:
            raise ValueError(f"nominal_voltage must be one of {NOMINAL_VOLTAGES}")

    @property
    def cells(self) -> int:
        """Cells in series."""
        return _CELLS[self.chemistry][self.nominal_voltage]

    @property
    def low_voltage(self) -> float:
        """Default low-voltage alert threshold in V, rounded to 0.1 V."""
        return round(_LOW_PER_CELL[self.chemistry] * self.cells, 1)

    @property
    def voltage_band(self) -> float:
        """Default low-voltage hysteresis: 0.1 V for a 12 V bank, scaled with the voltage."""
        return round(0.1 * self.nominal_voltage / 12, 2)

    @property
    def high_temperature(self) -> float:
        """Default high-temperature alert threshold in °C."""
        return _HIGH_C[self.chemistry]

    @property
    def charge_min_temperature(self) -> float | None:
        """Below this (°C) charging harms the battery; None if there is no such limit."""
        return _CHARGE_MIN_C[self.chemistry]

    @property
    def idle_slope(self) -> float:
        """|dV/dt| in V/h under which a battery without a current reading counts as idle.

        0.02 V per cell and hour: about 0.12 V/h for 12 V lead-acid, 0.08 V/h for 12 V
        LiFePO4, well under what a charger or a load of C/20 produces.
        """
        return 0.02 * self.cells

    def rest_soc(self, voltage: float) -> float:
        """SoC in % (0..100, clamped) of a battery at rest from its voltage in V."""
        table = _REST[self.chemistry]
        per_cell = voltage / self.cells
        volts = [v for v, _ in table]
        if per_cell <= volts[0]:
            return 0.0
        if per_cell >= volts[-1]:
            return 100.0
        i = bisect_left(volts, per_cell)
        (v0, s0), (v1, s1) = table[i - 1], table[i]
        return s0 + (s1 - s0) * (per_cell - v0) / (v1 - v0)
