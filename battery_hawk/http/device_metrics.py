"""Per-device Prometheus series, kept as plain values and turned into metrics at scrape time.

Every series is labelled by ``device_id`` only, so renaming a device does not break its
history; name, model and address are in ``battery_hawk_device_info``. Counters are
exposed as ``*_total`` without ``*_created`` series. Keeping plain values (no client
objects, no locks) makes the per-reading cost a few dictionary writes, and
prometheus_client (about 4 MiB) is imported only when /metrics is first scraped.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from battery_hawk.models import DeviceInfo, DeviceReading

if TYPE_CHECKING:
    from prometheus_client.core import Metric

__all__ = ["FIELDS", "READ_BUCKETS", "DeviceCollector"]

# Reading field -> (metric name in base units, help, factor to convert the Reading value)
FIELDS: Final[Mapping[str, tuple[str, str, float]]] = {
    "voltage": ("battery_hawk_voltage_volts", "Battery voltage in volts", 1.0),
    "soc": ("battery_hawk_soc_percent", "State of charge in percent, as the monitor reports it",
            1.0),
    "temperature": ("battery_hawk_temperature_celsius", "Battery temperature in °C", 1.0),
    "current": ("battery_hawk_current_amperes",
                "Battery current in amperes, positive while charging", 1.0),
    "power": ("battery_hawk_power_watts", "Power in watts", 1.0),
    "consumed_ah": ("battery_hawk_consumed_ampere_hours",
                    "Charge consumed in ampere hours (negative: drawn)", 1.0),
    "remaining_mins": ("battery_hawk_remaining_seconds",
                       "Time remaining in seconds, as the monitor estimates it", 60.0),
    "aux_voltage": ("battery_hawk_aux_voltage_volts",
                    "Second voltage (starter battery, midpoint or input) in volts", 1.0),
    "solar_power": ("battery_hawk_solar_power_watts", "Solar power in watts", 1.0),
    "yield_today": ("battery_hawk_yield_today_kilowatt_hours",
                    "Solar yield today in kilowatt hours", 1.0),
    "ac_apparent_power": ("battery_hawk_ac_apparent_power_voltamperes",
                          "AC output apparent power in volt-amperes", 1.0),
}

READ_BUCKETS: Final = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
"""Upper bounds (s) of the read duration histogram: a BLE visit takes 1-10 s."""


@dataclass(slots=True)
class _Device:
    info: DeviceInfo
    values: dict[str, float] = field(default_factory=dict)
    rssi: float | None = None
    seq: float | None = None
    last: float | None = None
    online: float = 0.0
    readings: int = 0
    decode_errors: int = 0
    transport_errors: int = 0
    history: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * len(READ_BUCKETS))
    duration_sum: float = 0.0
    duration_count: int = 0
    success_ratio: float | None = None
    quality: float | None = None
    alerts: dict[str, bool] = field(default_factory=dict)


class DeviceCollector:
    """Holds each device's latest figures; ``collect`` makes the metric families."""

    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}

    def add(self, info: DeviceInfo) -> None:
        """Make a device's series exist (counters at 0) before its first reading."""
        device = self._devices.get(info.device_id)
        if device is None:
            self._devices[info.device_id] = _Device(info)
        else:
            device.info = info  # a rename changes device_info only

    def remove(self, device_id: str) -> None:
        self._devices.pop(device_id, None)

    def _of(self, info: DeviceInfo) -> _Device:
        device = self._devices.get(info.device_id)
        if device is None:
            device = self._devices[info.device_id] = _Device(info)
        elif device.info is not info and device.info != info:
            device.info = info
        return device

    def reading(self, dr: DeviceReading) -> None:
        device = self._of(dr.device)
        reading = dr.reading
        values: dict[str, float] = {}
        for name, (_, _, factor) in FIELDS.items():
            value = getattr(reading, name, None)
            if value is not None:
                values[name] = value * factor
        device.values = values  # a field not reported now has no stale value
        if dr.rssi is not None:
            device.rssi = dr.rssi
        device.seq = dr.seq
        device.last = dr.timestamp.timestamp()
        device.readings += 1
        if dr.duration is not None:
            index = bisect.bisect_left(READ_BUCKETS, dr.duration)  # first bound >= it
            if index < len(READ_BUCKETS):  # longer than the last bound: only in +Inf
                device.buckets[index] += 1
            device.duration_sum += dr.duration
            device.duration_count += 1

    def error(self, info: DeviceInfo, kind: str) -> None:
        device = self._of(info)
        if kind == "decode":
            device.decode_errors += 1
        else:
            device.transport_errors += 1

    def history(self, info: DeviceInfo, count: int) -> None:
        self._of(info).history += count

    def online(self, info: DeviceInfo, online: bool) -> None:
        self._of(info).online = 1.0 if online else 0.0

    def link(self, device_id: str, success_ratio: float | None, quality: float | None) -> None:
        device = self._devices.get(device_id)
        if device is not None:
            device.success_ratio, device.quality = success_ratio, quality

    def alerts(self, device_id: str, active: Mapping[str, bool]) -> None:
        device = self._devices.get(device_id)
        if device is not None:
            device.alerts = dict(active)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

        devices = sorted(self._devices.items())
        info = GaugeMetricFamily(
            "battery_hawk_device_info",
            "Always 1; labels say what the device_id of the other series is",
            labels=["device_id", "name", "model", "manufacturer", "family", "address"])
        for did, d in devices:
            i = d.info
            info.add_metric([did, i.name, i.model, i.manufacturer, i.family, i.address], 1.0)
        yield info
        for name, (metric, text, _) in FIELDS.items():
            yield _gauge(metric, text, ((did, d.values.get(name)) for did, d in devices))
        yield _gauge("battery_hawk_rssi_dbm", "Signal strength of the last advertisement in dBm",
                     ((did, d.rssi) for did, d in devices))
        yield _gauge("battery_hawk_seq", "Sequence number of the last reading",
                     ((did, d.seq) for did, d in devices))
        yield _gauge("battery_hawk_last_reading_timestamp_seconds",
                     "Unix time of the last reading", ((did, d.last) for did, d in devices))
        yield _gauge("battery_hawk_device_online", "1 while the device is available, else 0",
                     ((did, d.online) for did, d in devices))
        yield _counter("battery_hawk_readings", "Readings received and published",
                       ((did, d.readings) for did, d in devices))
        yield _counter("battery_hawk_decode_errors", "Frames that did not decode",
                       ((did, d.decode_errors) for did, d in devices))
        yield _counter("battery_hawk_transport_errors",
                       "Visits that failed in the Bluetooth link (connect, timeout, no reply)",
                       ((did, d.transport_errors) for did, d in devices))
        yield _counter("battery_hawk_history_readings",
                       "Readings filled in from a monitor's own memory and published",
                       ((did, d.history) for did, d in devices))
        hist = HistogramMetricFamily(
            "battery_hawk_read_duration_seconds",
            "Time one visit took, connect to reading, in seconds (polled devices)",
            labels=["device_id"])
        for did, d in devices:
            if d.duration_count:
                cumulative, total = [], 0
                for bound, count in zip(READ_BUCKETS, d.buckets, strict=True):
                    total += count
                    cumulative.append((_bound(bound), float(total)))
                cumulative.append(("+Inf", float(d.duration_count)))
                hist.add_metric([did], cumulative, d.duration_sum)
        yield hist
        yield _gauge("battery_hawk_read_success_ratio",
                     "Successful reads of all read attempts in the last hour (0 to 1)",
                     ((did, d.success_ratio) for did, d in devices))
        yield _gauge("battery_hawk_connection_quality",
                     "Link quality over the last hour: 3 EXCELLENT, 2 GOOD, 1 POOR, 0 CRITICAL",
                     ((did, d.quality) for did, d in devices))
        alerts = GaugeMetricFamily("battery_hawk_alert_active",
                                   "1 while the alert of this kind is raised, else 0",
                                   labels=["device_id", "kind"])
        for did, d in devices:
            for kind, active in sorted(d.alerts.items()):
                alerts.add_metric([did, kind], 1.0 if active else 0.0)
        yield alerts


def _bound(value: float) -> str:
    return str(float(value))


def _gauge(name: str, text: str, values: Iterable[tuple[str, float | None]]) -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, text, labels=["device_id"])
    for did, value in values:
        if value is not None:
            family.add_metric([did], float(value))
    return family


def _counter(name: str, text: str, values: Iterable[tuple[str, int]]) -> Metric:
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(name, text, labels=["device_id"])
    for did, value in values:
        family.add_metric([did], float(value))
    return family
