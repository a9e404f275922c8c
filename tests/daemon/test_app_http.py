"""The App's own HTTP routes over a real socket (MQTT switched off)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from battery_hawk.app import App
from battery_hawk.demo import demo_config
from battery_hawk.simulator.devices import SimTransport
from tests.http.conftest import get
from tests.support.brokers import wait_until


def make_app(tmp_path: Path) -> App:
    transport = SimTransport.with_fleet(2)
    config = demo_config(transport, port=1, interval=1.0, storage=str(tmp_path), http_port=0)
    config = dataclasses.replace(config, mqtt=dataclasses.replace(config.mqtt, enabled=False))
    return App(config, transport=transport)


async def test_reset_breaker_closes_an_open_breaker_of_a_known_device(tmp_path: Path) -> None:
    async with make_app(tmp_path) as app:
        assert app.http is not None
        device_id, coordinator = next(iter(app.coordinators.items()))
        breaker = coordinator._breaker
        for _ in range(breaker.failure_threshold):
            breaker.record_failure()
        assert coordinator.breaker_state == "open"
        reply = await get(app.http.port, f"/api/devices/{device_id}/reset-breaker", "POST")
        assert (reply.status, json.loads(reply.body)) == (
            200, {"device_id": device_id, "breaker": "closed"})
        assert coordinator.breaker_state == "closed"
        missing = await get(app.http.port, "/api/devices/nope/reset-breaker", "POST")
        assert missing.status == 404
        assert (await get(app.http.port, f"/api/devices/{device_id}/reset-breaker")).status == 405


async def test_devices_api_reports_link_insight_and_alerts_of_each_device(
    tmp_path: Path,
) -> None:
    async with make_app(tmp_path) as app:
        assert app.http is not None
        await wait_until(lambda: all(c.status.readings >= 3 for c in app.coordinators.values()))
        devices = json.loads((await get(app.http.port, "/api/devices")).body)
        assert len(devices) == 2
        for doc in devices:
            link = doc["link"]
            assert link["breaker"] == "closed"
            assert link["success_rate"] == 1.0 and link["quality"] in ("EXCELLENT", "GOOD")
            assert 0 <= link["latency_p50_s"] <= link["latency_p95_s"]
            assert set(doc["insight"]) == {"trend", "voltage_slope", "time_to_low_mins",
                                           "soc_estimated"}
            assert doc["alerts"] == []
        health = json.loads((await get(app.http.port, "/health")).body)
        assert health["failing"] == [] and health["checks"]["mqtt"]["state"] == "disabled"
