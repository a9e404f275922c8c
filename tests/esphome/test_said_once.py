"""What the log says of a proxy that cannot be used: each kind of failure once per run of
failures, naming the config key to fix, and the recovery once at INFO (STYLE 9). The
real aioesphomeapi client against the fake proxy; retries are fast (50 ms to 0.5 s)."""

from __future__ import annotations

import asyncio
import base64
import logging
import random

import pytest

from battery_hawk.ble.radios import RadioSet
from battery_hawk.config import EsphomeProxyConfig
from battery_hawk.esphome.radios import add_proxies
from battery_hawk.esphome.transport import FLAP_SESSION
from tests.esphome.conftest import FAST, KEY, OTHER_KEY, TransportFactory
from tests.fakeesphome.server import FakeEsphomeProxy
from tests.support.brokers import wait_until

WAIT = 10.0
RETRIES = 1.5  # s of retries: about five attempts


def said(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("battery_hawk") and r.levelno == level]


def no_repeated_prefix(message: str, label: str) -> bool:
    return message.count(f"proxy {label}") == 1


@pytest.mark.parametrize(("server", "client", "kind", "key"), [
    ({"encryption_key": KEY}, {"encryption_key": OTHER_KEY}, "refused the encryption key",
     "encryption_key"),
    ({"encryption_key": KEY}, {}, "requires encryption", "encryption_key"),
    ({"password": "secret"}, {"password": "wrong"}, "refused the password", "password"),
    ({"password": "secret"}, {}, "refused the password", "password"),
], ids=["wrong-key", "missing-key", "wrong-password", "no-password"])
async def test_a_refused_login_is_said_once_naming_the_key_and_the_recovery_once(
    make_transport: TransportFactory, caplog: pytest.LogCaptureFixture,
    server: dict[str, str], client: dict[str, str], kind: str, key: str,
) -> None:
    caplog.set_level(logging.INFO)
    async with FakeEsphomeProxy(**server) as proxy:  # type: ignore[arg-type]
        transport = await make_transport(proxy, config_key="bluetooth.esphome_proxies[2]",
                                         **client)
        await asyncio.sleep(RETRIES)
        assert proxy.sessions + proxy.refused_keys >= 3 or not transport.available
        warnings = said(caplog, logging.WARNING)
        assert len(warnings) == 1, warnings
        assert kind in warnings[0] and f"bluetooth.esphome_proxies[2].{key}" in warnings[0]
        assert no_repeated_prefix(warnings[0], f"127.0.0.1:{proxy.port}"), warnings[0]
        # the proxy is set up as the config says: it connects, said once at INFO
        proxy.psk = base64.b64decode(client["encryption_key"]) if "encryption_key" in client \
            else None
        proxy.password = client.get("password")
        await transport.wait_ready(WAIT)
        await asyncio.sleep(0.3)
        assert said(caplog, logging.WARNING) == warnings
        assert [m for m in said(caplog, logging.INFO) if "connected" in m] == [
            f"proxy 127.0.0.1:{proxy.port}: fake-proxy (ESPHome 2025.11.0) connected again"]


async def test_an_unreachable_proxy_and_one_that_goes_away_are_said_once_each(
    make_transport: TransportFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    proxy = FakeEsphomeProxy()
    await proxy.start()
    await proxy.kill()  # its port is known; nobody listens
    try:
        transport = await make_transport(proxy)
        await asyncio.sleep(RETRIES)
        warnings = said(caplog, logging.WARNING)
        assert len(warnings) == 1 and "cannot be reached" in warnings[0], warnings
        assert no_repeated_prefix(warnings[0], f"127.0.0.1:{proxy.port}"), warnings[0]
        await proxy.start()
        await transport.wait_ready(WAIT)
        infos = [m for m in said(caplog, logging.INFO) if "connected" in m]
        assert infos == [f"proxy 127.0.0.1:{proxy.port}: fake-proxy (ESPHome 2025.11.0) "
                         "connected again"]
        # a proxy that held its session and goes away: the end and the failing
        # reconnects, once each
        transport.stable_session = 0.0
        caplog.clear()
        await proxy.kill()
        await wait_until(lambda: not transport.available, timeout=WAIT)
        await asyncio.sleep(RETRIES)
        warnings = said(caplog, logging.WARNING)
        assert len(warnings) == 2, warnings
        assert "session" in warnings[0] and "cannot be reached" in warnings[1], warnings
        assert all(no_repeated_prefix(w, f"127.0.0.1:{proxy.port}") for w in warnings)
    finally:
        await proxy.kill()


async def test_a_refused_key_names_the_proxys_place_in_the_config(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "battery_hawk.esphome")
    async with FakeEsphomeProxy(encryption_key=KEY) as good, \
            FakeEsphomeProxy(encryption_key=KEY) as bad:
        transports = add_proxies(RadioSet(), [
            EsphomeProxyConfig("127.0.0.1", good.port, encryption_key=KEY),
            EsphomeProxyConfig("127.0.0.1", bad.port, encryption_key=OTHER_KEY)],
            connect_timeout=5.0)
        try:
            for transport in transports:
                transport._backoff, transport._rng = FAST, random.Random(1)
                await transport.start()
            assert await asyncio.gather(*(t.wait_tried(WAIT) for t in transports)) == [
                True, True]
        finally:
            for transport in transports:
                await transport.close()
    warnings = said(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"proxy 127.0.0.1:{bad.port}: connecting failed: it refused "
                                  "the encryption key: Invalid encryption key"), warnings
    assert warnings[0].endswith("(set bluetooth.esphome_proxies[1].encryption_key to the "
                                "proxy's `api: encryption: key:`); retrying with backoff")


async def test_a_proxy_that_ran_a_while_then_went_away_is_said_back_at_once(
    make_transport: TransportFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with FakeEsphomeProxy() as proxy:
        transport = await make_transport(proxy)  # stable_session: the default 30 s
        await transport.wait_ready(WAIT)
        await asyncio.sleep(FLAP_SESSION + 0.5)  # longer than a session that ends at once
        caplog.clear()
        await proxy.kill()
        await wait_until(lambda: not transport.available, timeout=WAIT)
        await asyncio.sleep(RETRIES)  # several failed reconnects
        await proxy.start()
        await transport.wait_ready(WAIT)
        await asyncio.sleep(0.3)
        # it ran a while before it went: coming back is said at once, not 30 s later
        assert [m for m in said(caplog, logging.INFO) if "connected" in m] == [
            f"proxy 127.0.0.1:{proxy.port}: fake-proxy (ESPHome 2025.11.0) connected again"]
