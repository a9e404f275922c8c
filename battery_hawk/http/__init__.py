"""HTTP status server: Prometheus /metrics, /health, /api/devices and a status page."""

from battery_hawk.http.metrics import Metrics, MqttStatsSource
from battery_hawk.http.server import HttpServer
from battery_hawk.http.status import (
    DeviceStatus,
    HealthSnapshot,
    Overall,
    RadioStatus,
    StatusProvider,
    device_document,
    health_document,
    radios_document,
)

__all__ = [
    "DeviceStatus",
    "HealthSnapshot",
    "HttpServer",
    "Metrics",
    "MqttStatsSource",
    "Overall",
    "RadioStatus",
    "StatusProvider",
    "device_document",
    "health_document",
    "radios_document",
]
