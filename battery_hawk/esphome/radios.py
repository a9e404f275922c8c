"""ESPHome proxies as radios of a RadioSet (battery_hawk.ble.radios), one per proxy."""

from __future__ import annotations

from collections.abc import Sequence

from battery_hawk.ble.radios import RadioSet
from battery_hawk.config import EsphomeProxyConfig
from battery_hawk.esphome.transport import EsphomeTransport

__all__ = ["DEFAULT_PROXY_SLOTS", "add_proxies"]

DEFAULT_PROXY_SLOTS = 3  # ESPHome's bluetooth_proxy connection_slots default


def add_proxies(radios: RadioSet, proxies: Sequence[EsphomeProxyConfig], *,
                connect_timeout: float) -> list[EsphomeTransport]:
    """One EsphomeTransport per proxy, each added to radios under its name
    (``esphome:HOST:PORT``) with the free slots the proxy reports; a refused key names
    the proxy's entry, ``bluetooth.esphome_proxies[i]``. The caller starts
    them (``start()``) and closes them (``close()``)."""
    transports = []
    for index, proxy in enumerate(proxies):
        transport = EsphomeTransport(proxy, connect_timeout=connect_timeout,
                                     config_key=f"bluetooth.esphome_proxies[{index}]")
        radios.add_radio(transport.name, transport, slots=DEFAULT_PROXY_SLOTS,
                         free_slots=lambda t=transport: t.connections_free)  # type: ignore[misc]
        transports.append(transport)
    return transports
