"""Pieces the App is built from: the MQTTInterface for a config, and gateway stats."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import psutil

from battery_hawk.config import Config
from battery_hawk.mqtt import BrokerSettings, MQTTInterface, ReconnectionConfig, TLSSettings
from battery_hawk.mqtt.spool import Spool
from battery_hawk.publisher import Topics

if TYPE_CHECKING:
    from battery_hawk.coordinator import DeviceCoordinator

__all__ = ["GatewayStats", "build_mqtt"]

_log = logging.getLogger(__name__)


def build_mqtt(config: Config) -> MQTTInterface:
    """The MQTTInterface for a config: broker, TLS, resilience, Last Will on the status topic."""
    m = config.mqtt
    topics = Topics(m.topic_prefix, config.gateway_id, m.discovery_prefix)
    broker = BrokerSettings(
        host=m.broker,
        port=m.port,
        username=m.username,
        password=m.password,
        tls=TLSSettings(enabled=m.tls.enabled, ca_cert=m.tls.ca_cert,
                        cert_file=m.tls.cert_file, key_file=m.tls.key_file),
        client_id=f"battery-hawk-{config.gateway_id}",
        keepalive=m.keepalive,
    )
    reconnection = ReconnectionConfig(
        max_retries=m.max_retries,
        initial_retry_delay=m.initial_retry_delay,
        max_retry_delay=m.max_retry_delay,
        backoff_multiplier=m.backoff_multiplier,
        jitter_factor=m.jitter_factor,
        connection_timeout=m.connection_timeout,
        health_check_interval=m.health_check_interval,
        message_queue_size=m.message_queue_size,
        message_retry_limit=m.message_retry_limit,
    )
    storage = config.storage
    spool = (Spool(storage.path, int(storage.max_spool_mb * 1024 * 1024))
             if storage.spool else None)
    return MQTTInterface(broker, reconnection, status_topic=topics.gateway_status,
                         default_qos=m.qos, spool=spool)


class GatewayStats:
    """Counters for the periodic gateway stats message."""

    def __init__(self) -> None:
        self.readings = 0
        self._last: tuple[float, int] | None = None  # (monotonic time, readings) at a snapshot
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # prime: the next call measures since now

    def snapshot(
        self,
        mqtt_stats: dict[str, Any],
        coordinators: Iterable[DeviceCoordinator],
        started_at: float,
    ) -> dict[str, Any]:
        devices = list(coordinators)
        with self._process.oneshot():
            rss = self._process.memory_info().rss
            cpu = self._process.cpu_percent(None)
        now = time.monotonic()
        since, before = self._last or (started_at, 0)
        self._last = (now, self.readings)
        elapsed = now - since
        per_minute = (self.readings - before) * 60.0 / elapsed if elapsed > 0 else 0.0
        return {
            "uptime_s": round(now - started_at, 1),
            "readings": self.readings,
            "readings_per_minute": round(per_minute, 1),
            "devices": len(devices),
            "devices_online": sum(1 for c in devices if c.status.online),
            "rss_bytes": rss,
            "cpu_percent": cpu,
            "mqtt": mqtt_stats,
        }
