"""What ``battery-hawk history ADDRESS --type T [--since 6h] [--format csv|jsonl]`` does.

Downloads a BM2 / BM6 / BM7's stored records over BLE (no broker needed) and writes
them oldest first, as CSV (a header line, then one line per record) or JSON lines (one
object per record, the fields of the ``readings`` topic with ``"source": "history"``).
Timestamps are estimated: the newest record is stamped with the download time, each
older one 2 minutes earlier (battery_hawk.protocols.history).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from battery_hawk.errors import ConfigError, UnknownDeviceType
from battery_hawk.protocols.history import (
    HISTORY_FAMILIES,
    MAX_PAGES,
    HistoryRecord,
    pages_for,
)
from battery_hawk.publisher import format_timestamp

if TYPE_CHECKING:
    from battery_hawk.protocols.base import Driver

__all__ = ["COLUMNS", "history_command", "history_driver", "parse_since", "write_records"]

COLUMNS = ("timestamp", "voltage", "soc", "temperature", "min_crank_voltage", "kind")
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> timedelta:
    """``90m``, ``6h``, ``1d``, ``1h30m``, ``3600s`` as a timedelta; ConfigError otherwise."""
    spec = text.strip().lower()
    parts = _SPAN.findall(spec)
    if not parts or _SPAN.sub("", spec).strip():
        raise ConfigError(f"{text!r} is not a span like 90m, 6h or 1d", key="--since")
    try:
        span = timedelta(seconds=sum(float(n) * _UNIT[u] for n, u in parts))
    except OverflowError:  # beyond timedelta's 999999999 days
        raise ConfigError(f"{text!r} is longer than any monitor keeps history",
                          key="--since") from None
    if span <= timedelta(0):
        raise ConfigError("the span must be above zero", key="--since")
    return span


def history_driver(type_name: str) -> type[Driver]:
    """The driver class for ``--type`` if its family keeps history; ConfigError otherwise.

    Asked before the key: a Victron's missing key does not matter, it keeps no history.
    """
    from battery_hawk.protocols import get_driver

    try:
        driver_cls = get_driver(type_name)
    except UnknownDeviceType as exc:
        raise ConfigError(str(exc), key="--type") from None
    if driver_cls.family not in HISTORY_FAMILIES:
        raise ConfigError(
            f"{type_name} monitors keep no history; history works with bm2, bm6 and bm7",
            key="--type",
        )
    return driver_cls


def _row(record: HistoryRecord) -> dict[str, object]:
    return {
        "timestamp": format_timestamp(record.timestamp),
        "voltage": record.voltage,
        "soc": record.soc,
        "temperature": record.temperature,
        "min_crank_voltage": record.min_crank_voltage,
        "kind": record.kind,
    }


def write_records(records: Sequence[HistoryRecord], out: TextIO, fmt: str, *,
                  address: str, family: str) -> None:
    """Write records as ``csv`` or ``jsonl`` (see the module docstring)."""
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if v is None else v for k, v in _row(record).items()})
        return
    for record in records:
        doc = {"address": address, "type": family, **_row(record), "source": "history"}
        out.write(json.dumps(doc, separators=(",", ":")) + "\n")


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def history_command(
    adapter: str,
    address: str,
    type_name: str,
    *,
    key: bytes | None,
    since: timedelta | None,
    fmt: str,
    out: TextIO,
    timeout: float = 30.0,
    now: Callable[[], datetime] = _utc_now,
) -> int:
    """Download and print; the number of records written.

    ConfigError for a type that keeps no history or a bad key; TransportError and
    DecodeError from the download.
    """
    from battery_hawk.ble.history import fetch_history
    from battery_hawk.ble.recovery import RecoverySettings
    from battery_hawk.ble.transport import BleakTransport

    driver_cls = history_driver(type_name)
    try:
        driver = driver_cls(key)
    except ValueError as exc:
        raise ConfigError(str(exc), key="--key") from None
    pages = MAX_PAGES if since is None else pages_for(since)
    records = await fetch_history(
        # a one-off command never power-cycles an adapter the daemon may be using
        BleakTransport(adapter, connect_timeout=timeout,
                       recovery=RecoverySettings(enabled=False)),
        address.upper(), driver,
        pages=pages, timeout=timeout, now=now,
    )
    if since is not None:
        oldest = now() - since
        records = [r for r in records if r.timestamp >= oldest]
    write_records(records, out, fmt, address=address.upper(), family=driver.family)
    return len(records)
