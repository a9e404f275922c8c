"""`battery-hawk scan --esphome HOST[:PORT]`: what one ESPHome proxy hears, before it goes
into the configuration (and whether battery-hawk can log in to it at all)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import TextIO

from battery_hawk.config import ESPHOME_API_PORT, EsphomeProxyConfig, proxy_key_problem
from battery_hawk.errors import ConfigError
from battery_hawk.esphome._errors import SCAN_OPTIONS
from battery_hawk.models import Advertisement

__all__ = ["ESPHOME_KEY_ENV", "ESPHOME_PASSWORD_ENV", "parse_proxy", "scan_proxy_main"]

ESPHOME_KEY_ENV = "BATTERY_HAWK_ESPHOME_KEY"  # keeps the key off the command line
ESPHOME_PASSWORD_ENV = "BATTERY_HAWK_ESPHOME_PASSWORD"  # and the legacy password
READY_TIMEOUT = 15.0  # seconds for the proxy's session to come up


def parse_proxy(text: str) -> tuple[str, int]:
    """argparse type: HOST or HOST:PORT (IPv6 as [ADDR]:PORT); the port defaults to 6053."""
    host, port = text.strip(), ESPHOME_API_PORT
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise argparse.ArgumentTypeError(f"{text!r}: an IPv6 address needs its ']'")
        rest, host = host[end + 1:], host[1:end]
        if rest:
            if not rest.startswith(":"):
                raise argparse.ArgumentTypeError(f"{text!r} is not HOST[:PORT]")
            port = _port(text, rest[1:])
    elif host.count(":") == 1:
        host, raw = host.split(":")
        port = _port(text, raw)
    if not host:
        raise argparse.ArgumentTypeError(f"{text!r} names no host")
    return host, port


def _port(text: str, raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be a number 1..65535")
    return int(raw)


async def scan_proxy_main(args: argparse.Namespace, out: TextIO = sys.stdout,
                          err: TextIO = sys.stderr) -> int:
    """Connect to the proxy, say who it is, list what it hears for args.timeout seconds.

    Raises ConfigError for a malformed key (exit 2), a TransportError when the proxy
    cannot be used (refused key, unreachable: exit 1).
    """
    from battery_hawk.ble.commands import ScanResult
    from battery_hawk.ble_cli import devices_snippet, scan_table
    from battery_hawk.esphome.transport import EsphomeTransport
    from battery_hawk.protocols import identify

    host, port = args.esphome
    key = args.esphome_key or os.environ.get(ESPHOME_KEY_ENV) or None
    password = args.esphome_password or os.environ.get(ESPHOME_PASSWORD_ENV) or None
    if key is not None and (problem := proxy_key_problem(key)) is not None:
        raise ConfigError(f"{problem}: give the proxy's `api: encryption: key:`",
                          key="--esphome-key")
    if key is not None and password is not None:
        raise ConfigError("give either the key or the password: an encrypted proxy ignores "
                          "the legacy API password", key="--esphome-password")
    proxy = EsphomeProxyConfig(host, port, encryption_key=key, password=password)
    heard: dict[str, Advertisement] = {}
    # the failure that ends the scan is printed once, below: the transport need not log it
    logging.getLogger("battery_hawk.esphome").setLevel(logging.ERROR)
    async with EsphomeTransport(proxy, config_key=SCAN_OPTIONS) as transport:
        info = await transport.wait_ready(READY_TIMEOUT, first_try=True)
        slots = (f"{transport.connections_free} of {transport.connections_limit} connection "
                 "slot(s) free" if info.connectable
                 else "listens only (no `bluetooth_proxy: active: true`)")
        print(f"proxy {proxy.label}: {info.name}, ESPHome {info.esphome_version}, {slots}; "
              f"listening {args.timeout:g} s", file=err)
        adverts = transport.advertisements()
        try:
            async with asyncio.timeout(args.timeout):
                async for adv in adverts:
                    heard[adv.address] = adv
        except TimeoutError:
            pass
        finally:
            await adverts.aclose()  # type: ignore[attr-defined]
    found = []
    for adv in heard.values():
        match = identify(adv)
        found.append(ScanResult(adv, match.driver.family, match.reason) if match is not None
                     else ScanResult(adv, None, None))
    found.sort(key=lambda r: (r.family is None, -(r.advertisement.rssi or -999)))
    if not found:
        print(f"proxy {proxy.label} heard no Bluetooth device in {args.timeout:g} s "
              "(does Home Assistant use it? A proxy serves one client)", file=out)
        return 0
    for line in scan_table(found):
        print(line, file=out)
    if any(r.family is not None for r in found):
        print(file=out)
        for line in devices_snippet(found):
            print(line, file=out)
    return 0
