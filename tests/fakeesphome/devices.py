"""Simulated devices with a fixed reading, for tests that compare what arrives with ==."""

from __future__ import annotations

from battery_hawk.models import Reading
from battery_hawk.simulator import frames
from battery_hawk.simulator.devices import SimBatteryService, SimLeagendPoll, SimVictron

__all__ = ["FixedBattery", "bas", "bm6", "victron"]


class FixedBattery:
    """Stands in for a BatteryModel: step(now) always reads the same."""

    def __init__(self, reading: Reading) -> None:
        self.reading = reading

    def step(self, now: float) -> Reading:
        return self.reading


def bm6(address: str, reading: Reading, *, rssi: int = -60) -> SimLeagendPoll:
    return SimLeagendPoll(address, "BM6", FixedBattery(reading), frames.BM6_KEY,  # type: ignore[arg-type]
                          rssi=rssi)


def bas(address: str, soc: float, *, rssi: int = -60) -> SimBatteryService:
    return SimBatteryService(address, "Sim Battery", FixedBattery(Reading(soc=soc)),  # type: ignore[arg-type]
                             rssi=rssi)


def victron(address: str, key: bytes, reading: Reading, *, rssi: int = -60) -> SimVictron:
    return SimVictron(address, "SmartShunt", FixedBattery(reading), key, rssi=rssi)  # type: ignore[arg-type]
