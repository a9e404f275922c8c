"""BLE: the only package that imports bleak / bleak_retry_connector.

breaker, exchange, link, choice and radios are bleak-free (the coordinator and the
simulator use them; RadioSet holds several radios as one Transport); transport and
commands pull bleak in, lazily, on first use of their names.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from battery_hawk.ble.breaker import BreakerState, CircuitBreaker
from battery_hawk.ble.choice import ChoiceRules, RadioView, rank_radios
from battery_hawk.ble.exchange import (
    fetch_reading,
    query_firmware,
    read_reading,
    reading_from_advertisement,
    stream_readings,
    wait_for_advert_reading,
)
from battery_hawk.ble.link import Link, NotifyCallback, Transport
from battery_hawk.ble.radios import RadioSet

if TYPE_CHECKING:
    from battery_hawk.ble.commands import ScanResult, read_command, scan_command
    from battery_hawk.ble.transport import BleakLink, BleakTransport

__all__ = [
    "BleakLink",
    "BleakTransport",
    "BreakerState",
    "ChoiceRules",
    "CircuitBreaker",
    "Link",
    "NotifyCallback",
    "RadioSet",
    "RadioView",
    "ScanResult",
    "Transport",
    "fetch_reading",
    "query_firmware",
    "rank_radios",
    "read_command",
    "read_reading",
    "reading_from_advertisement",
    "scan_command",
    "stream_readings",
    "wait_for_advert_reading",
]

_LAZY = {
    "BleakLink": "battery_hawk.ble.transport",
    "BleakTransport": "battery_hawk.ble.transport",
    "ScanResult": "battery_hawk.ble.commands",
    "read_command": "battery_hawk.ble.commands",
    "scan_command": "battery_hawk.ble.commands",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
