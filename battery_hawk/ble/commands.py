"""What `battery-hawk scan` and `battery-hawk read` do, against the real BlueZ stack."""

from __future__ import annotations

from typing import NamedTuple

from battery_hawk.ble.exchange import fetch_reading
from battery_hawk.ble.recovery import RecoverySettings
from battery_hawk.ble.transport import BleakTransport
from battery_hawk.models import Advertisement, Reading
from battery_hawk.protocols import get_driver, identify

__all__ = ["ScanResult", "read_command", "scan_command"]

# a one-off command reports a stuck or switched-off adapter; only the daemon power-cycles
_NO_RECOVERY = RecoverySettings(enabled=False)


class ScanResult(NamedTuple):
    """One device heard during a scan, and the family it was recognised as (if any)."""

    advertisement: Advertisement
    family: str | None
    reason: str | None  # what gave the family away, e.g. "name 'BM6'"


async def scan_command(adapter: str, timeout: float) -> list[ScanResult]:
    """Discover for timeout seconds; strongest signal first."""
    adverts = await BleakTransport(adapter, recovery=_NO_RECOVERY).scan(timeout)
    results = []
    for adv in adverts:
        match = identify(adv)
        if match is None:
            results.append(ScanResult(adv, None, None))
        else:
            results.append(ScanResult(adv, match.driver.family, match.reason))
    results.sort(key=lambda r: 999 if r.advertisement.rssi is None else -r.advertisement.rssi)
    return results


async def read_command(
    adapter: str,
    address: str,
    type_name: str,
    key: bytes | None = None,
    timeout: float = 20.0,
) -> Reading:
    """One Reading from one device: passive types wait for an advert, others connect.

    Raises UnknownDeviceType for a bad type, ValueError for a bad / missing key,
    TransportError subclasses for radio trouble and DecodeError for frames that do not
    decode (e.g. a wrong key). Connecting and reading each get `timeout` seconds.
    """
    driver = get_driver(type_name)(key)
    transport = BleakTransport(adapter, connect_timeout=timeout, recovery=_NO_RECOVERY)
    return await fetch_reading(transport, address, driver, timeout)
