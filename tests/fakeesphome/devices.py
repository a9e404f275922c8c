"""Simulated devices with a fixed reading, for tests that compare what arrives with ==."""

from __future__ import annotations

from battery_hawk.models import Reading
from battery_hawk.simulator import frames
from battery_hawk.simulator.devices import SimBatteryService, SimBM2, SimLeagendPoll, SimVictron

__all__ = ["FixedBattery", "bas", "bm2", "bm6", "victron"]


class FixedBattery:
    """Stands in for a BatteryModel: step(now) always reads the same."""

    def __init__(self, reading: Reading) -> None:
        self.reading = reading

    def step(self, now: float) -> Reading:
        return self.reading


def bm6(address: str, reading: Reading, *, rssi: int = -60) -> SimLeagendPoll:
    return SimLeagendPoll(address, "BM6", FixedBattery(reading), frames.BM6_KEY,  # type: ignore[arg-type]
                          rssi=rssi)


def bm2(address: str, voltage: float, *, rssi: int = -60) -> SimBM2:
    """A BM2 streaming its voltage every 50 ms once notifications are on."""
    return SimBM2(address, "Battery Monitor", FixedBattery(Reading(voltage=voltage)),  # type: ignore[arg-type]
                  frames.BM2_KEY, rssi=rssi, interval=0.05)


def bas(address: str, soc: float, *, rssi: int = -60) -> SimBatteryService:
    return SimBatteryService(address, "Sim Battery", FixedBattery(Reading(soc=soc)),  # type: ignore[arg-type]
                             rssi=rssi)


def victron(address: str, key: bytes, reading: Reading, *, rssi: int = -60) -> SimVictron:
    return SimVictron(address, "SmartShunt", FixedBattery(reading), key, rssi=rssi)  # type: ignore[arg-type]
