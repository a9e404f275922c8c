"""Simulated devices that emit the real byte frames of each protocol.

frames: pure encoders (the inverse of each decoder); battery: a seeded battery model;
devices: SimTransport, a bleak-free Transport over simulated monitors. Importing this
package needs only the standard library, pycryptodome and battery_hawk itself.
"""

from __future__ import annotations

from battery_hawk.simulator.battery import BatteryModel, BatteryProfile, Chemistry
from battery_hawk.simulator.devices import FAMILIES, SimDevice, SimLink, SimTransport, build_fleet

__all__ = [
    "FAMILIES",
    "BatteryModel",
    "BatteryProfile",
    "Chemistry",
    "SimDevice",
    "SimLink",
    "SimTransport",
    "build_fleet",
]
