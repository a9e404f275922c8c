"""Two clients with one client id knock each other off: the log says why."""

from __future__ import annotations

import logging

import pytest

from battery_hawk.mqtt import MQTTInterface
from tests.mqtt.conftest import FAST, settings_for
from tests.support.brokers import Mosquitto, wait_until

pytestmark = pytest.mark.timeout(60)


def _clash_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "same client id" in r.getMessage()]


async def test_broker_closing_link_again_and_again_names_a_client_id_clash(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="battery_hawk.mqtt")
    first = MQTTInterface(settings_for(mosquitto.port, client_id="battery-hawk-garage"), FAST)
    second = MQTTInterface(settings_for(mosquitto.port, client_id="battery-hawk-garage"), FAST)
    async with first, second:
        await wait_until(lambda: _clash_warnings(caplog), timeout=30)
    warnings = _clash_warnings(caplog)
    assert "'battery-hawk-garage'" in warnings[0] and "gateway_id" in warnings[0]


async def test_one_client_per_id_gives_no_clash_warning(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="battery_hawk.mqtt")
    first = MQTTInterface(settings_for(mosquitto.port, client_id="battery-hawk-a"), FAST)
    second = MQTTInterface(settings_for(mosquitto.port, client_id="battery-hawk-b"), FAST)
    async with first, second:
        assert await first.wait_connected(10) and await second.wait_connected(10)
        for n in range(20):
            await first.publish("bh/clash/a", n)
            await second.publish("bh/clash/b", n)
        assert await first.flush(10) and await second.flush(10)
    assert _clash_warnings(caplog) == []
    assert first.stats.total_connections == 1 and second.stats.total_connections == 1
