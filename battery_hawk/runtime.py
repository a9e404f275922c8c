"""Pieces the App is built from: MQTT from config, announced-entity memory, gateway stats."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from battery_hawk.config import Config
from battery_hawk.mqtt import BrokerSettings, MQTTInterface, ReconnectionConfig, TLSSettings
from battery_hawk.publisher import Topics

if TYPE_CHECKING:
    from battery_hawk.coordinator import DeviceCoordinator

__all__ = ["Announcements", "GatewayStats", "build_mqtt"]

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
    return MQTTInterface(broker, reconnection, status_topic=topics.gateway_status,
                         default_qos=m.qos)


class Announcements:
    """Which entities each device has in Home Assistant, kept on disk.

    It lets the daemon remove the entities of a device that left the configuration, even
    across restarts, and announce again only when a device's set of fields grows.
    """

    def __init__(self, directory: Path) -> None:
        self._path = directory / "announced.json"
        self._data: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            self._data = {k: (tuple(v["fields"]), tuple(v["alerts"])) for k, v in raw.items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _log.warning("cannot read %s (%s); starting afresh", self._path, exc)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._data

    def items(self) -> list[tuple[str, tuple[tuple[str, ...], tuple[str, ...]]]]:
        return list(self._data.items())

    def get(self, device_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self._data.get(device_id, ((), ()))

    def update(self, device_id: str, fields: Iterable[str], alerts: Iterable[str]) -> bool:
        """Merge what a device reports; True if anything new needs announcing."""
        old_fields, old_alerts = self._data.get(device_id, ((), ()))
        merged_fields = tuple(dict.fromkeys((*old_fields, *fields)))
        merged_alerts = tuple(dict.fromkeys(alerts))
        if device_id in self._data and (merged_fields, merged_alerts) == (old_fields, old_alerts):
            return False
        self._data[device_id] = (merged_fields, merged_alerts)
        self._save()
        return True

    def forget(self, device_id: str) -> None:
        if self._data.pop(device_id, None) is not None:
            self._save()

    def _save(self) -> None:
        doc = {k: {"fields": list(f), "alerts": list(a)} for k, (f, a) in self._data.items()}
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc), encoding="utf-8")
            tmp.replace(self._path)
        except OSError as exc:
            _log.warning("cannot write %s: %s", self._path, exc)


class GatewayStats:
    """Counters for the periodic gateway stats message."""

    def __init__(self) -> None:
        self.readings = 0
        self._alert_state_sent: set[str] = set()
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # prime: the next call measures since now

    def alerts_sent(self, device_id: str) -> bool:
        """Whether the retained alert state of a device went out once already."""
        if device_id in self._alert_state_sent:
            return True
        self._alert_state_sent.add(device_id)
        return False

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
        return {
            "uptime_s": round(time.monotonic() - started_at, 1),
            "readings": self.readings,
            "devices": len(devices),
            "devices_online": sum(1 for c in devices if c.status.online),
            "rss_bytes": rss,
            "cpu_percent": cpu,
            "mqtt": mqtt_stats,
        }
