"""One native-API session with an ESPHome Bluetooth proxy: open it, check what it can.

Facts from ESPHome's native API (aioesphomeapi/model.py BluetoothProxyFeature): a proxy
announces what it can in DeviceInfoResponse.bluetooth_proxy_feature_flags; connections
need ACTIVE_CONNECTIONS (``bluetooth_proxy: active: true``) and REMOTE_CACHING (ESPHome
2022.12 and later); raw advertisements need RAW_ADVERTISEMENTS (ESPHome 2023.6 and
later).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aioesphomeapi.client import APIClient
from aioesphomeapi.model import BluetoothProxyFeature, ConnectionClosedEvent

from battery_hawk.config import EsphomeProxyConfig
from battery_hawk.errors import AdapterNotReadyError
from battery_hawk.esphome._errors import API_FAILURES, translate

__all__ = ["ProxyInfo", "ProxySession", "ProxyStatus", "feature_problem", "open_session"]

CLIENT_INFO = "battery-hawk"
_NEEDED_FOR_CONNECTIONS = (BluetoothProxyFeature.ACTIVE_CONNECTIONS
                           | BluetoothProxyFeature.REMOTE_CACHING)


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """Who the proxy is, from its DeviceInfoResponse."""

    name: str
    mac: str  # the proxy's own Bluetooth MAC
    esphome_version: str
    feature_flags: int

    @property
    def connectable(self) -> bool:
        return self.feature_flags & _NEEDED_FOR_CONNECTIONS == _NEEDED_FOR_CONNECTIONS



@dataclass(frozen=True, slots=True)
class ProxyStatus:
    """One proxy as /api/radios and /metrics show it: connected or not, who it is (None
    until its first session), its free and total connection slots (0 while away), the
    last error (None if it never failed) and how many sessions it has had."""

    label: str  # host:port
    connected: bool
    name: str | None
    esphome_version: str | None
    slots_free: int
    slots_limit: int
    last_error: str | None
    sessions: int


class ProxySession:
    """One live API connection and what came with it."""

    def __init__(self, client: APIClient, info: ProxyInfo, closed: asyncio.Event,
                 failures: list[Exception]) -> None:
        self.client = client
        self.info = info
        self.free = 0
        self.limit = 0
        self.closed = closed  # set when the connection stops
        self.counted = asyncio.Event()  # the proxy reported its slots
        self.heard_any = False
        self.failures = failures  # why it stopped, if aioesphomeapi said

    @property
    def error(self) -> Exception | None:
        return self.failures[0] if self.failures else None


async def open_session(proxy: EsphomeProxyConfig, *, keepalive: float, timeout: float,
                       config_key: str = "") -> ProxySession:
    """Connect, log in and ask the proxy who it is, within timeout seconds.

    config_key: the proxy's entry in the config (``bluetooth.esphome_proxies[0]``), named
    by the error of a refused key or password.

    Raises AuthenticationFailedError for a refused key or password, AdapterNotReadyError
    for a proxy that cannot be reached or is no (usable) Bluetooth proxy,
    ConnectTimeoutError, or another TransportError.
    """
    where = f"proxy {proxy.label}"
    client = APIClient(proxy.host, proxy.port, proxy.password,
                       client_info=CLIENT_INFO, keepalive=keepalive,
                       noise_psk=proxy.encryption_key, provide_time=False)
    closed = asyncio.Event()
    failure: list[Exception] = []

    def on_closed(event: ConnectionClosedEvent) -> None:
        if event.error is not None:
            failure.append(event.error)
        closed.set()

    async def on_stop(_expected: bool) -> None:
        closed.set()

    client.add_connection_closed_callback(on_closed)
    try:
        async with asyncio.timeout(timeout):
            await client.connect(on_stop=on_stop, login=True)
            device = await client.device_info()
    except asyncio.CancelledError:
        client.force_disconnect()
        raise
    except API_FAILURES as exc:
        client.force_disconnect()
        cause = failure[0] if failure else exc
        raise translate(cause, where, "connecting", config_key=config_key) from cause
    assert client.api_version is not None
    flags = device.bluetooth_proxy_feature_flags_compat(client.api_version)
    info = ProxyInfo(device.name, device.bluetooth_mac_address or device.mac_address,
                     device.esphome_version, int(flags))
    problem = feature_problem(flags)
    if problem is not None:
        client.force_disconnect()
        raise AdapterNotReadyError(f"{where} ({info.name}, ESPHome "
                                   f"{info.esphome_version}): {problem}")
    return ProxySession(client, info, closed, failure)


def feature_problem(flags: int) -> str | None:
    """Why a device cannot serve as a proxy for battery-hawk, or None."""
    if not flags & BluetoothProxyFeature.PASSIVE_SCAN:
        return "it is no Bluetooth proxy: add `bluetooth_proxy:` to its YAML"
    if not flags & BluetoothProxyFeature.RAW_ADVERTISEMENTS:
        return "its ESPHome is too old to forward raw advertisements: update it to 2023.6 "\
            "or later"
    return None
