"""ESPHome proxies in /metrics, /health and /api/radios (the pure documents)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from battery_hawk.http import HealthSnapshot, Metrics, RadioStatus, health_document
from battery_hawk.http.status import radios_document


def test_each_proxy_has_its_connected_and_slot_gauges() -> None:
    metrics = Metrics(CollectorRegistry(), process=False)
    metrics.bind_proxies(lambda: [("10.0.0.5:6053", True, 2, 3), ("10.0.0.6:6053", False, 0, 0)])
    text = metrics.render().decode()
    for line in ('battery_hawk_esphome_proxy_connected{proxy="10.0.0.5:6053"} 1.0',
                 'battery_hawk_esphome_proxy_connected{proxy="10.0.0.6:6053"} 0.0',
                 'battery_hawk_esphome_proxy_slots_free{proxy="10.0.0.5:6053"} 2.0',
                 'battery_hawk_esphome_proxy_slots_limit{proxy="10.0.0.5:6053"} 3.0'):
        assert line in text.splitlines(), line


def test_without_proxies_there_is_no_proxy_series() -> None:
    metrics = Metrics(CollectorRegistry(), process=False)
    metrics.bind_proxies(list)
    assert "esphome_proxy" not in metrics.render().decode()


def test_a_proxy_away_makes_health_degraded_and_is_named() -> None:
    health = HealthSnapshot(mqtt_state="connected", uptime_s=5.0,
                            proxies={"10.0.0.5:6053": True, "10.0.0.6:6053": False})
    doc = health_document(health, [])
    assert (doc["status"], doc["proxies"]) == (
        "degraded", {"connected": 1, "total": 2, "away": ["10.0.0.6:6053"]})
    every_up = HealthSnapshot(mqtt_state="connected", uptime_s=5.0,
                              proxies={"10.0.0.5:6053": True})
    assert health_document(every_up, [])["status"] == "ok"


def test_radios_document_gives_a_proxy_its_details_and_an_adapter_none() -> None:
    doc = radios_document([
        RadioStatus("hci0", "adapter", connected=False, failing="hci0 is powered off"),
        RadioStatus("esphome:10.0.0.5:6053", "esphome", connected=True,
                    proxy="10.0.0.5:6053", proxy_name="van", esphome_version="2025.11.0",
                    slots_free=1, slots_limit=3, last_error=None, sessions=2)])
    assert doc == {"radios": [
        {"name": "hci0", "kind": "adapter", "connected": False,
         "failing": "hci0 is powered off"},
        {"name": "esphome:10.0.0.5:6053", "kind": "esphome", "connected": True,
         "failing": None, "proxy": "10.0.0.5:6053", "proxy_name": "van",
         "esphome_version": "2025.11.0", "slots": {"free": 1, "limit": 3},
         "last_error": None, "sessions": 2}]}
