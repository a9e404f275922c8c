"""Prometheus metrics of battery-hawk, kept in a registry of their own."""

from __future__ import annotations

import logging
import platform
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Final

from battery_hawk import __version__
from battery_hawk.http.device_metrics import DeviceCollector
from battery_hawk.models import DeviceInfo, DeviceReading

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

__all__ = ["MQTT_STATES", "CodeCountSource", "Metrics", "MqttStatsSource", "ProxySource"]

_LOG = logging.getLogger(__name__)


MqttStatsSource = Callable[[], Mapping[str, object]]
"""Returns the MQTTInterface stats at scrape time (e.g. a bound ``stats()`` method)."""

MQTT_STATES: Final = (
    "disabled",
    "disconnected",
    "connecting",
    "connected",
    "reconnecting",
    "failed",
)
CodeCountSource = Callable[[], Mapping[str, Mapping[str, int]]]
"""Returns, per device id, how many codes its decoder did not know, per field."""
ProxySource = Callable[[], Iterable[tuple[str, bool, int, int]]]
"""Returns, per ESPHome proxy: its host:port, whether it is connected, its free connection
slots and their limit (both 0 while it is away)."""

_STATE_KEYS: Final = ("connection_state", "state")
_COUNTER_KEYS: Final = frozenset(
    {"reconnects", "reconnect_count", "connection_attempts", "connection_failures",
     "superseded", "spool_evicted", "dead_letters", "dropped_overflow",
     "dropped_retry_limit"}
)
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]+")
_MQTT_HELP: Final[Mapping[str, str]] = {
    "queue_size": "Messages waiting in the MQTT queue",
    "in_flight": "QoS 1/2 messages sent but not yet acknowledged",
    "messages_published": "Messages the broker acknowledged",
    "messages_queued": "Messages put in the MQTT queue",
    "messages_failed": "Failed attempts to send a message",
    "messages_dropped": "Messages given up (queue full or retry limit)",
    "messages_rejected": "Messages refused before queueing (bad topic or payload)",
    "dropped_overflow": "Oldest messages dropped because the queue was full",
    "dropped_retry_limit": "Messages dropped after message_retry_limit failed sends",
    "consecutive_failures": "Failed connection attempts since the last success",
    "total_connections": "Connections made to the broker",
    "total_disconnections": "Connections lost or closed",
    "total_reconnections": "Reconnections after a lost connection",
    "last_connection_attempt": "Unix time of the last connection attempt",
    "last_connected": "Unix time the current or last connection was made",
}


class _MqttCollector:
    """Turns the MQTT stats mapping into metrics at scrape time.

    ``connection_state`` becomes a state-set style gauge (label ``state``) plus
    ``battery_hawk_mqtt_connected``; ``messages_*``, ``*_total`` and reconnect counts become
    counters; every other number (queue_size, ...) a gauge. Strings, nested values and
    unknown shapes are skipped.
    """

    def __init__(self) -> None:
        self.source: MqttStatsSource | None = None

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if self.source is None:
            return
        try:
            stats = dict(self.source())
        except Exception:  # a scrape must not fail because of one source
            _LOG.debug("MQTT stats source failed", exc_info=True)
            return
        for key in _STATE_KEYS:
            state = stats.pop(key, None)
            if isinstance(state, Enum):  # ConnectionState: its string value, else its name
                state = state.value if isinstance(state.value, str) else state.name
            if isinstance(state, str):
                current = state.lower()
                family = GaugeMetricFamily(
                    "battery_hawk_mqtt_connection_state",
                    "MQTT connection state: 1 for the current state, 0 for the others",
                    labels=["state"],
                )
                for name in dict.fromkeys((*MQTT_STATES, current)):
                    family.add_metric([name], 1.0 if name == current else 0.0)
                yield family
                yield GaugeMetricFamily(
                    "battery_hawk_mqtt_connected",
                    "1 while connected to the broker",
                    value=1.0 if current == "connected" else 0.0,
                )
                break
        for key, raw in sorted(stats.items()):
            if isinstance(raw, int | float):  # bool included
                value = float(raw)
            else:
                continue
            name = _NOT_NAME.sub("_", key).strip("_").lower()
            if not name:
                continue
            text = _MQTT_HELP.get(name, f"MQTT interface figure {key}")
            base = name.removesuffix("_total").removeprefix("total_")
            if (name.endswith("_total") or name.startswith(("messages_", "total_", "dropped_"))
                    or name in _COUNTER_KEYS):
                yield CounterMetricFamily(f"battery_hawk_mqtt_{base}", text, value=value)
            else:
                yield GaugeMetricFamily(f"battery_hawk_mqtt_{name}", text, value=value)


class _CodeCollector:
    """Unknown enum codes per device and field (e.g. a Victron off reason), at scrape time."""

    def __init__(self) -> None:
        self.source: CodeCountSource | None = None

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            "battery_hawk_unknown_codes",
            "Codes a decoder did not know (the field was published as null)",
            labels=["device_id", "field"],
        )
        if self.source is not None:
            try:
                counts = {d: dict(c) for d, c in self.source().items()}
            except Exception:  # a scrape must not fail because of one source
                _LOG.debug("code count source failed", exc_info=True)
                counts = {}
            for device_id, fields in sorted(counts.items()):
                for field, count in sorted(fields.items()):
                    family.add_metric([device_id, field], float(count))
        yield family


class Metrics:
    """Every battery-hawk metric; the daemon calls the `observe_*` / `set_*` methods."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        process: bool = True,
        mqtt_stats: MqttStatsSource | None = None,
    ) -> None:
        self._devices = DeviceCollector()
        self._recoveries = _RecoveryCollector()
        self._radio_reads = _RadioReadsCollector()
        self._mqtt = _MqttCollector()
        self._mqtt.source = mqtt_stats
        self._codes = _CodeCollector()
        self._proxies = _ProxyCollector()
        self._process = process
        self._registry: CollectorRegistry | None = None
        if registry is not None:
            self._fill(registry)

    @property
    def registry(self) -> CollectorRegistry:
        """The registry of every series, made at the first scrape (prometheus_client is
        imported then, not at start-up: a daemon nobody scrapes does not carry it)."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            self._fill(CollectorRegistry())
        assert self._registry is not None
        return self._registry

    @property
    def content_type(self) -> str:
        """The Content-Type of ``render()``'s text format."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return str(CONTENT_TYPE_LATEST)

    def _fill(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        for collector in (self._devices, _BuildInfo(), self._recoveries, self._radio_reads,
                          self._mqtt, self._codes, self._proxies):
            registry.register(collector)
        if self._process:
            self._add_process_collectors(registry)

    @staticmethod
    def _add_process_collectors(registry: CollectorRegistry) -> None:
        from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

        for factory in (ProcessCollector, PlatformCollector, GCCollector):
            try:
                factory(registry=registry)
            except Exception:  # e.g. no /proc: the daemon's own metrics still work
                _LOG.debug("%s unavailable", factory.__name__, exc_info=True)

    def bind_mqtt(self, source: MqttStatsSource | None) -> None:
        """Read MQTT figures from `source` at every scrape (None: no MQTT metrics)."""
        self._mqtt.source = source

    def bind_unknown_codes(self, source: CodeCountSource | None) -> None:
        """Read the decoders' unknown-code counts from `source` at every scrape."""
        self._codes.source = source

    def bind_proxies(self, source: ProxySource | None) -> None:
        """Read the ESPHome proxies' state from `source` at every scrape."""
        self._proxies.source = source

    def add_device(self, device: DeviceInfo) -> None:
        """Make a device's counters and online gauge exist (at 0) before its first reading."""
        self._devices.add(device)

    def remove_device(self, device_id: str) -> None:
        """Drop every series of a device (removed from the config)."""
        self._devices.remove(device_id)

    def observe_reading(self, dr: DeviceReading) -> None:
        """One published reading: field gauges, rssi, seq, timestamp, readings, duration."""
        self._devices.reading(dr)

    def observe_link(self, device_id: str, success_ratio: float | None,
                     quality: float | None) -> None:
        """The device's read success ratio (0..1) and link grade (0..3) over the last hour."""
        self._devices.link(device_id, success_ratio, quality)

    def set_alerts(self, device_id: str, active: Mapping[str, bool]) -> None:
        """The state of each alert kind of a device."""
        self._devices.alerts(device_id, active)

    def observe_history(self, device: DeviceInfo, count: int) -> None:
        """count readings from the device's memory were published."""
        self._devices.history(device, count)

    def observe_decode_error(self, device: DeviceInfo) -> None:
        self._devices.error(device, "decode")

    def observe_transport_error(self, device: DeviceInfo) -> None:
        self._devices.error(device, "transport")

    def observe_adapter_recovery(self, adapter: str, reason: str, method: str, ok: bool) -> None:
        """One power cycle of a stuck adapter (see battery_hawk.ble.recovery)."""
        key = (adapter, reason, method, "ok" if ok else "failed")
        self._recoveries.counts[key] = self._recoveries.counts.get(key, 0) + 1

    def observe_radio_reading(self, adapter: str) -> None:
        """One reading came through this radio (an adapter hciN, or a proxy)."""
        counts = self._radio_reads.counts
        counts[adapter] = counts.get(adapter, 0) + 1

    def set_online(self, device: DeviceInfo, online: bool) -> None:
        self._devices.online(device, online)

    def render(self) -> bytes:
        """The text exposition format (``content_type``) of everything in the registry."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _RecoveryCollector:
    """Adapter power cycles, as a counter without a _created series."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str, str], int] = {}

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            "battery_hawk_adapter_recoveries",
            "Power cycles of a stuck Bluetooth adapter (reason: stuck / silent; "
            "method: dbus / bluetooth-auto-recovery; result: ok / failed)",
            labels=["adapter", "reason", "method", "result"])
        for labels, count in sorted(self.counts.items()):
            family.add_metric(list(labels), float(count))
        yield family


class _RadioReadsCollector:
    """Readings per radio, as a counter without a _created series."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            "battery_hawk_adapter_readings",
            "Readings by the radio that read them (a local adapter hciN, or a proxy)",
            labels=["adapter"])
        for adapter, count in sorted(self.counts.items()):
            family.add_metric([adapter], float(count))
        yield family


class _ProxyCollector:
    """ESPHome proxies: connected or not, free and total connection slots, at scrape time."""

    def __init__(self) -> None:
        self.source: ProxySource | None = None

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        if self.source is None:
            return
        try:
            proxies = sorted(self.source())
        except Exception:  # a scrape must not fail because of one source
            _LOG.debug("proxy source failed", exc_info=True)
            return
        if not proxies:
            return
        connected = GaugeMetricFamily("battery_hawk_esphome_proxy_connected",
                                      "1 while an API session with the ESPHome proxy is up",
                                      labels=["proxy"])
        free = GaugeMetricFamily("battery_hawk_esphome_proxy_slots_free",
                                 "Connection slots the ESPHome proxy has free (0 while away)",
                                 labels=["proxy"])
        limit = GaugeMetricFamily("battery_hawk_esphome_proxy_slots_limit",
                                  "Connection slots the ESPHome proxy has in all (0 while away)",
                                  labels=["proxy"])
        for label, up, slots_free, slots_limit in proxies:
            connected.add_metric([label], 1.0 if up else 0.0)
            free.add_metric([label], float(slots_free))
            limit.add_metric([label], float(slots_limit))
        yield from (connected, free, limit)


class _BuildInfo:
    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("battery_hawk_build_info",
                                   "Always 1; labels say which battery-hawk and Python run",
                                   labels=["version", "python"])
        family.add_metric([__version__, platform.python_version()], 1.0)
        yield family
