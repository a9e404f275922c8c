"""ESPHome Bluetooth proxies as radios: the only package that imports aioesphomeapi.

EsphomeTransport (transport.py) fulfils battery_hawk.ble.link.Transport for one proxy;
adverts.py and gatt.py are pure; listening.py hands what a proxy hears to its listeners;
radios.py adds proxies to a RadioSet; command.py is
`battery-hawk scan --esphome`. aioesphomeapi is imported on first use of these names,
not with the package (the command line parses `--esphome` without it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from battery_hawk.esphome.adverts import decode_raw_advertisement
    from battery_hawk.esphome.link import EsphomeLink
    from battery_hawk.esphome.session import ProxyInfo
    from battery_hawk.esphome.transport import EsphomeTransport

__all__ = ["EsphomeLink", "EsphomeTransport", "ProxyInfo", "decode_raw_advertisement"]

_LAZY = {
    "EsphomeLink": "battery_hawk.esphome.link",
    "EsphomeTransport": "battery_hawk.esphome.transport",
    "ProxyInfo": "battery_hawk.esphome.session",
    "decode_raw_advertisement": "battery_hawk.esphome.adverts",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
