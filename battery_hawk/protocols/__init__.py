"""Device drivers: one module per family, pure decoders, and the registry `type:` picks from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from battery_hawk.errors import UnknownDeviceType
from battery_hawk.models import Advertisement
from battery_hawk.protocols.bas import BatteryService
from battery_hawk.protocols.base import Driver, Mode, uuid16
from battery_hawk.protocols.bm2 import BM2, HistoryPoint
from battery_hawk.protocols.bm6 import BM6
from battery_hawk.protocols.bm7 import BM7
from battery_hawk.protocols.victron import Victron

__all__ = [
    "BM2",
    "BM6",
    "BM7",
    "DRIVERS",
    "FAMILIES",
    "BatteryService",
    "Driver",
    "HistoryPoint",
    "Match",
    "Mode",
    "Victron",
    "get_driver",
    "identify",
    "parse_key",
    "recognise",
    "uuid16",
]

# The canonical type names, in the order recognise() tries them: the most specific
# evidence (Victron's manufacturer id) first, the generic Battery Service last.
FAMILIES: tuple[type[Driver], ...] = (Victron, BM6, BM7, BM2, BatteryService)

DRIVERS: Mapping[str, type[Driver]] = MappingProxyType(
    {
        "bm2": BM2,
        "bm6": BM6,
        "bm7": BM7,
        "victron": Victron,
        "bas": BatteryService,
        # aliases: the names the units are sold under
        "bm200": BM6,
        "bm300": BM7,
        "bm300pro": BM7,
        "battery_service": BatteryService,
    }
)


@dataclass(frozen=True, slots=True)
class Match:
    """A recognised advertisement: the driver and what gave it away."""

    driver: type[Driver]
    reason: str

    @property
    def type_name(self) -> str:
        return self.driver.family


def get_driver(type_name: str) -> type[Driver]:
    """The driver class for a config `type:` (case-insensitive); UnknownDeviceType if none."""
    try:
        return DRIVERS[type_name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise UnknownDeviceType(
            f"unknown device type {type_name!r}; known types: {known}"
        ) from None


def identify(adv: Advertisement) -> Match | None:
    """The first family whose driver recognises the advertisement, and why."""
    for driver in FAMILIES:
        reason = driver.match(adv)
        if reason is not None:
            return Match(driver, reason)
    return None


def recognise(adv: Advertisement) -> type[Driver] | None:
    """The driver class an advertisement looks like, or None (see identify() for why)."""
    found = identify(adv)
    return found.driver if found else None


_KEY_SEPARATORS = re.compile(r"[\s:_-]")


def parse_key(hex_str: str) -> bytes:
    """A 16-byte AES key from hex ("0x" prefix and : - _ space separators allowed).

    Raises ValueError naming what is wrong, without echoing the (secret) key.
    """
    text = _KEY_SEPARATORS.sub("", hex_str.strip())
    if text[:2].lower() == "0x":
        text = text[2:]
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError("key is not hexadecimal") from None
    if len(key) != 16:
        raise ValueError(f"key must be 16 bytes (32 hex digits), got {len(key)} bytes")
    return key
