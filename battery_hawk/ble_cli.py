"""The bodies of `battery-hawk scan` and `battery-hawk read` (cli.py keeps the parser).

Nothing here imports bleak at import time: cli.py uses mac_address() while parsing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from battery_hawk.config_loader import mac_address as config_mac
from battery_hawk.errors import ConfigError, InProgressError

if TYPE_CHECKING:
    from battery_hawk.ble.commands import ScanResult

__all__ = ["adapter_name", "devices_snippet", "mac_address", "read_main", "scan_main", "scan_table"]

EXIT_OK = 0
DAEMON_HOLDS_ADAPTER = (
    "is the battery-hawk daemon running? It scans and connects all the time: "
    "`sudo systemctl stop battery-hawk`, run this, then `sudo systemctl start battery-hawk`"
)
# The forms the configuration takes (config_loader: `address`; config: `bluetooth.adapter`),
# so that an address that works here works in the file too.
_ADAPTER = re.compile(r"hci\d{1,3}|(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")


def mac_address(text: str) -> str:
    """argparse type: a Bluetooth MAC as the config takes it (colons or dashes, any case),
    as AA:BB:CC:DD:EE:FF; ArgumentTypeError with the config's words otherwise."""
    mac = config_mac(text)
    if mac is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a MAC address like AA:BB:CC:DD:EE:FF "
            "(`battery-hawk scan` lists the ones nearby)"
        )
    return mac


def adapter_name(text: str) -> str:
    """argparse type: hci0 or an adapter's MAC, as `bluetooth.adapter` takes it."""
    if not _ADAPTER.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an adapter name like hci0 or an adapter MAC address like "
            "00:1A:7D:DA:71:13 (`bluetoothctl list` shows yours)"
        )
    return text


# --- scan ------------------------------------------------------------------------------


class _Progress:
    """'listening on hci0: 4 s left, 7 devices, 2 recognised' on stderr while scanning."""

    def __init__(self, adapter: str, timeout: float, out: TextIO) -> None:
        self.adapter, self.timeout, self.out = adapter, timeout, out
        self.tty = out.isatty()
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, seen: int, recognised: int) -> None:
        elapsed = time.monotonic() - self.started
        if not self.shown and seen == 0 and elapsed < 0.5:
            return  # not before the adapter answered: a scan that fails at once shows no line
        left = max(0.0, self.timeout - elapsed)
        line = (f"listening on {self.adapter}: {left:.0f} s left, {seen} device(s) heard, "
                f"{recognised} recognised")
        self.out.write(f"\r{line}\033[K" if self.tty else f"{line}\n")
        self.out.flush()
        self.shown = True

    def done(self) -> None:
        if self.tty and self.shown:
            self.out.write("\n")
            self.out.flush()


def scan_table(found: Sequence[ScanResult]) -> list[str]:
    """The scan result as table lines: recognised devices first, strongest signal first.

    When several adapters listened, an ADAPTER column names the one that heard each
    device best (its RSSI is the one shown)."""
    several = any(r.advertisement.radio for r in found)
    adapter_head = f"{'ADAPTER':<8} " if several else ""
    lines = [f"{'ADDRESS':<18} {'RSSI':>5}  {adapter_head}{'TYPE':<8} {'NAME':<22} "
             "RECOGNISED BY"]
    for adv, family, reason in found:
        rssi = "" if adv.rssi is None else str(adv.rssi)
        adapter = f"{adv.radio or '-':<8} " if several else ""
        lines.append(f"{adv.address:<18} {rssi:>5}  {adapter}{family or '-':<8} "
                     f"{(adv.name or '')[:22]:<22} {reason or ''}".rstrip())
    return lines


def devices_snippet(found: Sequence[ScanResult]) -> list[str]:
    """A `devices:` YAML block for the recognised devices, ready to paste into the config.

    A Victron needs its key: the line says where to find it, and check-config rejects
    the placeholder until it is replaced.
    """
    from battery_hawk.protocols import VICTRON_KEY_HELP

    lines = ["devices:"]
    for adv, family, _reason in found:
        if family is None:
            continue
        name = adv.name or f"{family.upper()} {adv.address[-5:].replace(':', '')}"
        lines += [f"  - address: {adv.address}",
                  f"    type: {family}",
                  f"    name: {json.dumps(name, ensure_ascii=False)}"]
        if family == "victron":
            lines.append("    key: REPLACE_WITH_32_HEX_DIGITS  # " + VICTRON_KEY_HELP)
    return lines


async def scan_main(args: argparse.Namespace, out: TextIO = sys.stdout,
                    err: TextIO = sys.stderr) -> int:
    """`battery-hawk scan`: progress on stderr, the table and the YAML snippet on stdout."""
    from battery_hawk.ble.commands import scan_adapters, scan_command

    adapters = [args.adapter] if args.adapter else await scan_adapters()
    where = ", ".join(adapters)
    progress = _Progress(where, args.timeout, err)
    try:
        found = await scan_command(adapters, args.timeout, on_progress=progress)
    except InProgressError as exc:
        raise InProgressError(f"{exc}; {DAEMON_HOLDS_ADAPTER}") from exc
    finally:
        progress.done()
    if not found:
        print(f"no Bluetooth device heard on {where} in {args.timeout:g} s", file=out)
        return EXIT_OK
    for line in scan_table(found):
        print(line, file=out)
    recognised = sum(1 for r in found if r.family is not None)
    print(file=out)
    if not recognised:
        print("No battery monitor recognised. Is it powered and within a few metres, and is "
              "the phone app closed? A connected monitor stops advertising.", file=out)
        return EXIT_OK
    print(f"# {recognised} recognised; paste into the configuration "
          "(check it with `battery-hawk check-config`):", file=out)
    for line in devices_snippet(found):
        print(line, file=out)
    return EXIT_OK


# --- read ------------------------------------------------------------------------------


def _key(args: argparse.Namespace, type_name: str) -> bytes | None:
    from battery_hawk.protocols import DRIVERS, VICTRON_KEY_HELP, parse_key

    key: bytes | None = None
    if args.key is not None:
        try:
            key = parse_key(args.key)
        except ValueError as exc:
            where = f"; {VICTRON_KEY_HELP}" if type_name == "victron" else ""
            raise ConfigError(f"{exc}{where}", key="--key") from None
    try:
        DRIVERS[type_name](key)  # a missing or malformed key is bad usage, not a failure
    except ValueError as exc:
        raise ConfigError(str(exc), key="--key") from None
    return key


async def read_main(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """`battery-hawk read ADDRESS --type T`: one reading as JSON on stdout.

    The address, type and key are checked before anything touches the radio (exit 2).
    A unit that stays silent or answers in another family's format gets a message that
    says which, and suggests `battery-hawk scan`.
    """
    from battery_hawk.ble.commands import read_command
    from battery_hawk.protocols import DRIVERS, unknown_type_message

    address: str = args.address  # checked and normalised by mac_address() while parsing
    type_name = args.type_.strip().lower()
    if type_name not in DRIVERS:
        raise ConfigError(unknown_type_message(type_name), key="--type")
    key = _key(args, type_name)
    try:
        reading = await read_command(args.adapter, address, type_name, key, args.timeout)
    except InProgressError as exc:
        raise InProgressError(f"{exc}; {DAEMON_HOLDS_ADAPTER}") from exc
    print(json.dumps({"address": address, "type": type_name,
                      **dataclasses.asdict(reading)}, indent=2), file=out)
    return EXIT_OK
