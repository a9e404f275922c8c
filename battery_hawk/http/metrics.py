"""Prometheus metrics of battery-hawk, kept in a registry of their own."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from battery_hawk.models import DeviceInfo, DeviceReading

__all__ = ["CONTENT_TYPE", "MQTT_STATES", "CodeCountSource", "Metrics", "MqttStatsSource"]

_LOG = logging.getLogger(__name__)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
LABELS: Final = ("device_id", "name", "model")

MqttStatsSource = Callable[[], Mapping[str, object]]
"""Returns the MQTTInterface stats at scrape time (e.g. a bound ``stats()`` method)."""

# Reading field -> (metric name in base units, help, factor to convert the Reading value)
_FIELDS: Final[Mapping[str, tuple[str, str, float]]] = {
    "voltage": ("battery_hawk_voltage_volts", "Battery voltage", 1.0),
    "soc": ("battery_hawk_soc_percent", "State of charge", 1.0),
    "temperature": ("battery_hawk_temperature_celsius", "Battery temperature", 1.0),
    "current": ("battery_hawk_current_amperes", "Current, positive while charging", 1.0),
    "power": ("battery_hawk_power_watts", "Power", 1.0),
    "consumed_ah": ("battery_hawk_consumed_ampere_hours", "Charge consumed", 1.0),
    "remaining_mins": ("battery_hawk_remaining_seconds", "Time remaining", 60.0),
    "aux_voltage": ("battery_hawk_aux_voltage_volts", "Auxiliary / starter voltage", 1.0),
    "solar_power": ("battery_hawk_solar_power_watts", "Solar power", 1.0),
    "yield_today": ("battery_hawk_yield_today_kilowatt_hours", "Solar yield today", 1.0),
    "ac_apparent_power": ("battery_hawk_ac_apparent_power_voltamperes", "AC output", 1.0),
}

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

_STATE_KEYS: Final = ("connection_state", "state")
_COUNTER_KEYS: Final = frozenset(
    {"reconnects", "reconnect_count", "connection_attempts", "connection_failures"}
)
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]+")


class _MqttCollector(Collector):
    """Turns the MQTT stats mapping into metrics at scrape time.

    ``connection_state`` becomes a state-set style gauge (label ``state``) plus
    ``battery_hawk_mqtt_connected``; ``messages_*``, ``*_total`` and reconnect counts become
    counters; every other number (queue_size, ...) a gauge. Strings, nested values and
    unknown shapes are skipped.
    """

    def __init__(self) -> None:
        self.source: MqttStatsSource | None = None

    def collect(self) -> Iterator[Metric]:
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
            base = name.removesuffix("_total")
            if name.endswith("_total") or name.startswith("messages_") or name in _COUNTER_KEYS:
                yield CounterMetricFamily(f"battery_hawk_mqtt_{base}", f"MQTT {key}", value=value)
            else:
                yield GaugeMetricFamily(f"battery_hawk_mqtt_{name}", f"MQTT {key}", value=value)


class _CodeCollector(Collector):
    """Unknown enum codes per device and field (e.g. a Victron off reason), at scrape time."""

    def __init__(self) -> None:
        self.source: CodeCountSource | None = None

    def collect(self) -> Iterator[Metric]:
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
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self._fields = {
            field: (Gauge(name, text, LABELS, registry=reg), factor)
            for field, (name, text, factor) in _FIELDS.items()
        }
        self._rssi = Gauge(
            "battery_hawk_rssi_dbm", "Received signal strength", LABELS, registry=reg
        )
        self._seq = Gauge(
            "battery_hawk_seq", "Sequence number of the last reading", LABELS, registry=reg
        )
        self._last = Gauge(
            "battery_hawk_last_reading_timestamp_seconds",
            "Unix time of the last reading",
            LABELS,
            registry=reg,
        )
        self._online = Gauge(
            "battery_hawk_device_online", "1 while the device is available", LABELS, registry=reg
        )
        self._readings = Counter(
            "battery_hawk_readings", "Readings published", LABELS, registry=reg
        )
        self._decode_errors = Counter(
            "battery_hawk_decode_errors", "Frames that did not decode", LABELS, registry=reg
        )
        self._transport_errors = Counter(
            "battery_hawk_transport_errors", "BLE transport failures", LABELS, registry=reg
        )
        self._adapter_recoveries = Counter(
            "battery_hawk_adapter_recoveries",
            "Power cycles of a stuck Bluetooth adapter (reason: stuck / silent; "
            "method: dbus / bluetooth-auto-recovery; result: ok / failed)",
            ("adapter", "reason", "method", "result"), registry=reg,
        )
        self._history = Counter(
            "battery_hawk_history_readings",
            "Readings filled in from a monitor's own memory and published",
            LABELS, registry=reg,
        )
        self._mqtt = _MqttCollector()
        self._mqtt.source = mqtt_stats
        reg.register(self._mqtt)
        self._codes = _CodeCollector()
        reg.register(self._codes)
        self._labels: dict[str, tuple[str, str, str]] = {}
        self._reported: dict[str, set[str]] = {}  # device_id -> fields with a live gauge
        if process:
            self._add_process_collectors()

    def _add_process_collectors(self) -> None:
        from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

        for factory in (ProcessCollector, PlatformCollector, GCCollector):
            try:
                factory(registry=self.registry)
            except Exception:  # e.g. no /proc: the daemon's own metrics still work
                _LOG.debug("%s unavailable", factory.__name__, exc_info=True)

    def bind_mqtt(self, source: MqttStatsSource | None) -> None:
        """Read MQTT figures from `source` at every scrape (None: no MQTT metrics)."""
        self._mqtt.source = source

    def bind_unknown_codes(self, source: CodeCountSource | None) -> None:
        """Read the decoders' unknown-code counts from `source` at every scrape."""
        self._codes.source = source

    def _series(self) -> list[Gauge | Counter]:
        gauges = [gauge for gauge, _ in self._fields.values()]
        return [*gauges, self._rssi, self._seq, self._last, self._online, self._readings,
                self._decode_errors, self._transport_errors, self._history]  # fmt: skip

    def add_device(self, device: DeviceInfo) -> None:
        """Make a device's counters and online gauge exist (at 0) before its first reading."""
        labels = (device.device_id, device.name, device.model)
        if self._labels.get(device.device_id) not in (None, labels):
            self.remove_device(device.device_id)  # renamed: drop the old series
        self._labels[device.device_id] = labels
        for counter in (self._readings, self._decode_errors, self._transport_errors,
                        self._history):
            counter.labels(*labels)
        self._online.labels(*labels)

    def remove_device(self, device_id: str) -> None:
        """Drop every series of a device (removed from the config)."""
        labels = self._labels.pop(device_id, None)
        self._reported.pop(device_id, None)
        if labels is None:
            return
        for metric in self._series():
            with contextlib.suppress(KeyError):
                metric.remove(*labels)

    def _of(self, device: DeviceInfo) -> tuple[str, str, str]:
        labels = self._labels.get(device.device_id)
        if labels is None or labels != (device.device_id, device.name, device.model):
            self.add_device(device)
            labels = self._labels[device.device_id]
        return labels

    def observe_reading(self, dr: DeviceReading) -> None:
        """One published reading: field gauges, rssi, seq, timestamp, readings_total."""
        labels = self._of(dr.device)
        reported = self._reported.setdefault(dr.device.device_id, set())
        for field, (gauge, factor) in self._fields.items():
            value = getattr(dr.reading, field)
            if value is not None:
                gauge.labels(*labels).set(value * factor)
                reported.add(field)
            elif field in reported:  # not reported now: no stale value
                reported.discard(field)
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        if dr.rssi is not None:
            self._rssi.labels(*labels).set(dr.rssi)
        self._seq.labels(*labels).set(dr.seq)
        self._last.labels(*labels).set(dr.timestamp.timestamp())
        self._readings.labels(*labels).inc()

    def observe_history(self, device: DeviceInfo, count: int) -> None:
        """count readings from the device's memory were published."""
        self._history.labels(*self._of(device)).inc(count)

    def observe_decode_error(self, device: DeviceInfo) -> None:
        self._decode_errors.labels(*self._of(device)).inc()

    def observe_transport_error(self, device: DeviceInfo) -> None:
        self._transport_errors.labels(*self._of(device)).inc()

    def observe_adapter_recovery(self, adapter: str, reason: str, method: str, ok: bool) -> None:
        """One power cycle of a stuck adapter (see battery_hawk.ble.recovery)."""
        self._adapter_recoveries.labels(adapter, reason, method, "ok" if ok else "failed").inc()

    def set_online(self, device: DeviceInfo, online: bool) -> None:
        self._online.labels(*self._of(device)).set(1 if online else 0)

    def render(self) -> bytes:
        """The text exposition format (CONTENT_TYPE) of everything in the registry."""
        return generate_latest(self.registry)
