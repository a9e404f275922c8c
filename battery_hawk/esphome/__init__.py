"""ESPHome Bluetooth proxies as radios: the only package that imports aioesphomeapi.

EsphomeTransport (transport.py) fulfils battery_hawk.ble.link.Transport for one proxy;
adverts.py and gatt.py are pure.
"""

from __future__ import annotations

from battery_hawk.esphome.adverts import decode_raw_advertisement
from battery_hawk.esphome.link import EsphomeLink
from battery_hawk.esphome.session import ProxyInfo
from battery_hawk.esphome.transport import EsphomeTransport

__all__ = ["EsphomeLink", "EsphomeTransport", "ProxyInfo", "decode_raw_advertisement"]
