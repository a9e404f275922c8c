"""The real aioesphomeapi client against the fake proxy: the fake speaks the native API,
in plaintext and with Noise, as ESPHome does (what the other tests stand on)."""

from __future__ import annotations

import asyncio

import pytest
from aioesphomeapi.client import APIClient
from aioesphomeapi.core import (
    InvalidAuthAPIError,
    InvalidEncryptionKeyAPIError,
    RequiresEncryptionAPIError,
)
from aioesphomeapi.model import BluetoothProxyFeature

from battery_hawk.models import Reading
from tests.esphome.conftest import KEY, OTHER_KEY
from tests.fakeesphome.devices import bm6
from tests.fakeesphome.server import FakeEsphomeProxy

WAIT = 10.0


@pytest.mark.parametrize("key", [None, KEY], ids=["plaintext", "noise"])
async def test_aioesphomeapi_connects_and_hears_the_fakes_advertisements(
    key: str | None,
) -> None:
    device = bm6("5A:00:00:00:00:01", Reading(voltage=12.5), rssi=-66)
    async with FakeEsphomeProxy([device], encryption_key=key, mac="AA:BB:CC:00:00:07") as proxy:
        client = APIClient("127.0.0.1", proxy.port, None, noise_psk=key)
        async with asyncio.timeout(WAIT):
            await client.connect(login=True)
            info = await client.device_info()
            heard: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
            client.subscribe_bluetooth_le_raw_advertisements(
                lambda msg: [heard.put_nowait((a.address, a.rssi)) for a in msg.advertisements])
            address, rssi = await heard.get()
            await client.disconnect()
    assert (info.name, info.bluetooth_mac_address) == ("fake-proxy", "AA:BB:CC:00:00:07")
    flags = BluetoothProxyFeature(info.bluetooth_proxy_feature_flags)
    assert BluetoothProxyFeature.ACTIVE_CONNECTIONS in flags
    assert BluetoothProxyFeature.RAW_ADVERTISEMENTS in flags
    assert (address, rssi) == (0x5A0000000001, -66)


async def test_a_wrong_noise_key_is_refused_as_a_wrong_key() -> None:
    async with FakeEsphomeProxy(encryption_key=KEY) as proxy:
        client = APIClient("127.0.0.1", proxy.port, None, noise_psk=OTHER_KEY)
        with pytest.raises(InvalidEncryptionKeyAPIError):
            async with asyncio.timeout(WAIT):
                await client.connect(login=True)
    assert proxy.refused_keys == 1


async def test_a_plaintext_client_is_told_the_proxy_requires_encryption() -> None:
    async with FakeEsphomeProxy(encryption_key=KEY) as proxy:
        client = APIClient("127.0.0.1", proxy.port, None)
        with pytest.raises(RequiresEncryptionAPIError):
            async with asyncio.timeout(WAIT):
                await client.connect(login=True)


async def test_a_wrong_legacy_password_is_refused() -> None:
    async with FakeEsphomeProxy(password="right") as proxy:
        client = APIClient("127.0.0.1", proxy.port, "wrong")
        with pytest.raises(InvalidAuthAPIError):
            async with asyncio.timeout(WAIT):
                await client.connect(login=True)
                await client.device_info()
