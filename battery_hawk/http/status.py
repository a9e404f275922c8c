"""What the daemon tells the HTTP server, and the JSON documents made from it (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from battery_hawk.models import MEASUREMENT_FIELDS, DeviceInfo, DeviceReading
from battery_hawk.publisher import format_timestamp

__all__ = [
    "DeviceStatus",
    "HealthSnapshot",
    "Overall",
    "RadioStatus",
    "StatusProvider",
    "checks",
    "device_document",
    "health_document",
    "radios_document",
]

# MQTT states that are not a fault: connected, or MQTT switched off in the config.
_MQTT_FINE = frozenset({"connected", "disabled"})


class Overall(StrEnum):
    """ok: all well; degraded: serving but something is off (200); failing: 503."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One configured device as the daemon sees it now."""

    info: DeviceInfo
    online: bool
    last_seen: datetime | None = None
    latest: DeviceReading | None = None
    readings: int = 0
    decode_errors: int = 0
    transport_errors: int = 0
    last_error: str | None = None
    stale: bool = False  # no reading within the device's offline period
    breaker: str | None = None  # closed, open, half_open
    success_rate: float | None = None  # 0..1, last hour
    latency_p50: float | None = None  # s, last hour
    latency_p95: float | None = None
    quality: str | None = None  # EXCELLENT, GOOD, POOR, CRITICAL
    trend: str | None = None  # charging, discharging, idle
    voltage_slope: float | None = None  # V/h
    time_to_low_mins: float | None = None
    soc_estimated: float | None = None
    alerts: tuple[str, ...] = ()  # active alert kinds
    history: tuple[tuple[float, float], ...] = ()  # (Unix time, V) of the last hour
    held_elsewhere: str | None = None  # why the phone app or another gateway may hold it


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Daemon-wide facts; the overall verdict is derived from them (see `overall`).

    loops maps each watchdog-supervised loop (scanner, coordinators, mqtt, ...) to whether
    it ticked recently; mqtt_state is the MQTTInterface ConnectionState name in lower case,
    or "disabled".
    """

    mqtt_state: str
    uptime_s: float
    loops: Mapping[str, bool] = field(default_factory=dict)
    mqtt_queue_size: int | None = None
    version: str | None = None
    mqtt_down_s: float | None = None  # seconds MQTT has not been connected (None: it is)
    mqtt_grace_s: float = 120.0  # how long MQTT may be down before health fails
    proxies: Mapping[str, bool] = field(default_factory=dict)  # ESPHome proxy -> connected


@dataclass(frozen=True, slots=True)
class RadioStatus:
    """One radio (a local adapter, an ESPHome proxy) as /api/radios shows it.

    failing: why the daemon stopped reading through it, or None; connected: a proxy's API
    session is up (an adapter: not failing). The proxy_* fields and slots are None for an
    adapter; name and version are None until the proxy's first session.
    """

    name: str  # hci0, esphome:HOST:PORT: as readings and /api/devices call it
    kind: str  # adapter, esphome
    connected: bool
    failing: str | None = None
    proxy: str | None = None  # HOST:PORT
    proxy_name: str | None = None
    esphome_version: str | None = None
    slots_free: int | None = None
    slots_limit: int | None = None
    last_error: str | None = None
    sessions: int | None = None


class StatusProvider(Protocol):
    """Implemented by the daemon (app.py); tests hand the server a small fake."""

    def health(self) -> HealthSnapshot: ...

    def devices(self) -> Sequence[DeviceStatus]: ...


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def checks(health: HealthSnapshot, devices: Sequence[DeviceStatus]) -> dict[str, dict[str, object]]:
    """The three health checks, each with ``ok`` and what it looked at.

    loops: every supervised loop runs. mqtt: MQTT is connected, disabled, or down for no
    longer than the grace period. devices: at least one device read within its offline
    period (or none is configured).
    """
    dead = sorted(name for name, alive in health.loops.items() if not alive)
    down = health.mqtt_down_s
    mqtt_ok = (health.mqtt_state.lower() in _MQTT_FINE or down is None
               or down <= health.mqtt_grace_s)
    stale = sum(1 for d in devices if d.stale)
    return {
        "loops": {"ok": not dead, "dead": dead},
        "mqtt": {"ok": mqtt_ok, "state": health.mqtt_state,
                 "down_s": None if down is None else round(down, 1),
                 "grace_s": health.mqtt_grace_s},
        "devices": {"ok": not devices or stale < len(devices), "stale": stale,
                    "total": len(devices)},
    }


def overall(health: HealthSnapshot, devices: Sequence[DeviceStatus]) -> Overall:
    """failing if a health check fails; degraded if MQTT is down, a device is offline or
    an ESPHome proxy is not connected."""
    if not all(c["ok"] for c in checks(health, devices).values()):
        return Overall.FAILING
    if (health.mqtt_state.lower() not in _MQTT_FINE or not all(d.online for d in devices)
            or not all(health.proxies.values())):
        return Overall.DEGRADED
    return Overall.OK


def health_document(health: HealthSnapshot, devices: Sequence[DeviceStatus]) -> dict[str, object]:
    """The /health body; the server answers 503 when status is failing.

    ``failing`` names the checks that failed (loops, mqtt, devices); ``checks`` has each;
    ``proxies`` is there when ESPHome proxies are configured.
    """
    online = sum(1 for d in devices if d.online)
    found = checks(health, devices)
    doc: dict[str, object] = {
        "status": str(overall(health, devices)),
        "failing": [name for name, check in found.items() if not check["ok"]],
        "checks": found,
        "mqtt": {"state": health.mqtt_state, "queue_size": health.mqtt_queue_size},
        "devices": {"online": online, "offline": len(devices) - online, "total": len(devices)},
        "uptime_s": round(health.uptime_s, 3),
        "loops": dict(health.loops),
        "version": health.version,
    }
    if health.proxies:  # ESPHome proxies configured: how many are connected, who is away
        doc["proxies"] = {"connected": sum(health.proxies.values()),
                          "total": len(health.proxies),
                          "away": sorted(p for p, up in health.proxies.items() if not up)}
    return doc


def radios_document(radios: Sequence[RadioStatus]) -> dict[str, object]:
    """The /api/radios body: ``{"radios": [...]}``, one entry per radio."""
    entries: list[dict[str, object]] = []
    for r in radios:
        entry: dict[str, object] = {"name": r.name, "kind": r.kind, "connected": r.connected,
                                    "failing": r.failing}
        if r.kind == "esphome":
            entry.update(proxy=r.proxy, proxy_name=r.proxy_name,
                         esphome_version=r.esphome_version,
                         slots={"free": r.slots_free, "limit": r.slots_limit},
                         last_error=r.last_error, sessions=r.sessions)
        entries.append(entry)
    return {"radios": entries}


def device_document(status: DeviceStatus) -> dict[str, object]:
    """One entry of /api/devices."""
    info = status.info
    latest: dict[str, object] | None = None
    if status.latest is not None:
        dr = status.latest
        latest = {
            "timestamp": format_timestamp(dr.timestamp),
            "seq": dr.seq,
            **{name: _finite(getattr(dr.reading, name)) for name in MEASUREMENT_FIELDS},
            "state": None if dr.reading.state is None else str(dr.reading.state),
            "device_state": dr.reading.device_state,
            "rssi": dr.rssi,
        }
    return {
        "device_id": info.device_id,
        "address": info.address,
        "name": info.name,
        "model": info.model,
        "manufacturer": info.manufacturer,
        "family": info.family,
        "firmware": info.firmware,
        "availability": "online" if status.online else "offline",
        "last_seen": _ts(status.last_seen),
        "latest": latest,
        "readings": status.readings,
        "errors": {
            "decode": status.decode_errors,
            "transport": status.transport_errors,
            "last": status.last_error,
        },
        "link": {
            "quality": status.quality,
            "success_rate": _finite(status.success_rate),
            "latency_p50_s": _finite(status.latency_p50),
            "latency_p95_s": _finite(status.latency_p95),
            "breaker": status.breaker,
        },
        "insight": {
            "trend": status.trend,
            "voltage_slope": _finite(status.voltage_slope),
            "time_to_low_mins": _finite(status.time_to_low_mins),
            "soc_estimated": _finite(status.soc_estimated),
        },
        "alerts": list(status.alerts),
        "held_elsewhere": status.held_elsewhere,
        "radio": status.latest.radio if status.latest is not None else None,
    }
