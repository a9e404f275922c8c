"""Device drivers: one module per family, pure decoders, and the registry `type:` picks from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
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
    "VICTRON_KEY_HELP",
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
    "unknown_type_message",
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


def unknown_type_message(type_name: str) -> str:
    """What to say about a `type:` that names no driver: the known ones, and which a unit is."""
    known = ", ".join(sorted(DRIVERS))
    return (
        f"unknown device type {type_name!r}; known types: {known} (a Victron SmartShunt, "
        "BMV or SmartSolar is victron; another monitor with the Bluetooth Battery Service "
        "is bas; `battery-hawk scan` names the type of each device it hears)"
    )


def get_driver(type_name: str) -> type[Driver]:
    """The driver class for a config `type:` (case-insensitive); UnknownDeviceType if none."""
    try:
        return DRIVERS[type_name.strip().lower()]
    except KeyError:
        raise UnknownDeviceType(unknown_type_message(type_name)) from None


@cache
def _probe(driver: type[Driver]) -> Driver:
    """A driver under its family's public key, to try advert blocks with."""
    return driver()


def identify(adv: Advertisement) -> Match | None:
    """The family an advertisement belongs to, and the evidence.

    Evidence, strongest first: Victron's manufacturer id; a family's name or one of the
    names its rebrands are sold under; the iBeacon UUID a family uses; an advert block
    that decrypts under a family's public key (and carries the advertiser's MAC); the
    standard Battery Service.
    """
    for driver in FAMILIES:
        if driver is BatteryService:
            continue
        reason = driver.match(adv)
        if reason is not None:
            return Match(driver, reason)
    for driver in FAMILIES:
        if driver.default_key is not None and _probe(driver).advert_decrypts(adv):
            return Match(driver, f"advert block decrypts with the {driver.model} key")
    reason = BatteryService.match(adv)
    return Match(BatteryService, reason) if reason is not None else None


def recognise(adv: Advertisement) -> type[Driver] | None:
    """The driver class an advertisement looks like, or None (see identify() for why)."""
    found = identify(adv)
    return found.driver if found else None


_KEY_SEPARATORS = re.compile(r"[\s:_-]")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

VICTRON_KEY_HELP = (
    "the key is in VictronConnect > the device > settings (gear) > Product info > "
    "Instant readout details > show encryption data"
)


def parse_key(hex_str: str) -> bytes:
    """A 16-byte AES key from 32 hex digits ("0x" prefix and : - _ space separators allowed).

    Raises ValueError saying what is wrong ("a key is 32 hex digits; you gave 31", "'g'
    at position 5 is not a hex digit"), without echoing the (secret) key.
    """
    text = str(hex_str).strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    digits = 0
    for position, char in enumerate(text, start=1):
        if char in _HEX_DIGITS:
            digits += 1
        elif not _KEY_SEPARATORS.match(char):
            raise ValueError(
                f"{char!r} at position {position} is not a hex digit (0-9, a-f); "
                "a key is 32 hex digits"
            )
    if digits != 32:
        raise ValueError(f"a key is 32 hex digits; you gave {digits}")
    return bytes.fromhex(_KEY_SEPARATORS.sub("", text))
