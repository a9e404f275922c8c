"""Fixtures: a fake ESPHome proxy on loopback and an EsphomeTransport for it."""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from battery_hawk.config import EsphomeProxyConfig
from battery_hawk.esphome import EsphomeTransport
from battery_hawk.mqtt.backoff import ReconnectionConfig
from tests.fakeesphome.server import FakeEsphomeProxy

KEY = base64.b64encode(bytes(range(32))).decode()  # a proxy's `api: encryption: key:`
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()
# reconnect quickly in tests: 50 ms doubling to 0.5 s
FAST = ReconnectionConfig(initial_retry_delay=0.05, max_retry_delay=0.5, jitter_factor=0.1)

TransportFactory = Callable[..., Awaitable[EsphomeTransport]]


@pytest.fixture
async def make_transport() -> AsyncIterator[TransportFactory]:
    """``await make_transport(proxy, encryption_key=..., **kwargs)``: started, closed after."""
    made: list[EsphomeTransport] = []

    async def make(proxy: FakeEsphomeProxy, *, encryption_key: str | None = None,
                   password: str | None = None, **kwargs: object) -> EsphomeTransport:
        config = EsphomeProxyConfig("127.0.0.1", proxy.port, encryption_key=encryption_key,
                                    password=password)
        options: dict[str, object] = {"backoff": FAST, "rng": random.Random(1),
                                      "connect_timeout": 5.0, "operation_timeout": 5.0,
                                      "api_timeout": 5.0}
        options.update(kwargs)
        transport = EsphomeTransport(config, **options)  # type: ignore[arg-type]
        made.append(transport)
        await transport.start()
        return transport

    yield make
    for transport in made:
        await transport.close()
