"""Readings to MQTT topics and payloads, and Home Assistant discovery documents (pure, no I/O).

Topics and payloads are documented in docs/mqtt.md. Discovery is one document per entity
(the long-standing ``<discovery_prefix>/<component>/<node_id>/<object_id>/config`` form), so
one entity can be added or removed without touching the others and every HA version since
2023 reads it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from battery_hawk import __version__
from battery_hawk.errors import PayloadError
from battery_hawk.models import MEASUREMENT_FIELDS, DeviceInfo, DeviceReading

__all__ = [
    "ALERT_NAMES",
    "DISCOVERABLE_FIELDS",
    "GATEWAY_SENSORS",
    "PAYLOAD_OFFLINE",
    "PAYLOAD_ONLINE",
    "SENSOR_SPECS",
    "Message",
    "SensorSpec",
    "Topics",
    "discovery_messages",
    "format_timestamp",
    "gateway_discovery_messages",
    "removal_messages",
    "reported_fields",
    "state_payload",
]

PAYLOAD_ONLINE: Final = "online"
PAYLOAD_OFFLINE: Final = "offline"

Message = tuple[str, bytes]
"""A (topic, payload) pair; every discovery and removal message is published retained."""

_WILDCARDS = re.compile(r"[+#\x00]")
_SLUG = re.compile(r"[^a-z0-9_]+")


def _check_level(value: str, what: str, *, allow_slash: bool = False) -> str:
    if not value or _WILDCARDS.search(value) or (not allow_slash and "/" in value):
        raise ValueError(f"{what} {value!r} is not usable in an MQTT topic")
    return value


def _slug(value: str) -> str:
    return _SLUG.sub("_", value.lower()).strip("_") or "x"


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic battery-hawk publishes to or listens on (docs/mqtt.md)."""

    topic_prefix: str
    gateway_id: str
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        _check_level(self.topic_prefix, "topic_prefix", allow_slash=True)
        _check_level(self.gateway_id, "gateway_id")
        _check_level(self.discovery_prefix, "discovery_prefix", allow_slash=True)

    @property
    def gateway_status(self) -> str:
        """Retained online/offline; offline is the Last Will."""
        return f"{self.topic_prefix}/gateway/{self.gateway_id}/status"

    @property
    def gateway_stats(self) -> str:
        return f"{self.topic_prefix}/gateway/{self.gateway_id}/stats"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth/last-will topic: resend discovery when it says online."""
        return f"{self.discovery_prefix}/status"

    def device_state(self, device_id: str) -> str:
        return f"{self._device(device_id)}/state"

    def device_readings(self, device_id: str) -> str:
        """Every reading as an event (QoS >= 1, not retained): for InfluxDB, Node-RED."""
        return f"{self._device(device_id)}/readings"

    def device_availability(self, device_id: str) -> str:
        return f"{self._device(device_id)}/availability"

    def device_alert(self, device_id: str) -> str:
        """Alert transitions as events (not retained)."""
        return f"{self._device(device_id)}/alert"

    def device_attributes(self, device_id: str) -> str:
        """Retained attributes of a device beyond its readings (``held_elsewhere``)."""
        return f"{self._device(device_id)}/attributes"

    def device_alerts(self, device_id: str) -> str:
        """Current state of every alert kind of a device (retained); HA's binary sensors read it."""
        return f"{self._device(device_id)}/alerts"

    def _device(self, device_id: str) -> str:
        return f"{self.topic_prefix}/device/{_check_level(device_id, 'device_id')}"

    # Discovery ids: node_id groups one device's entities under the discovery prefix.
    @property
    def gateway_identifier(self) -> str:
        return f"{_slug(self.topic_prefix)}_gateway_{_slug(self.gateway_id)}"

    def device_identifier(self, device_id: str) -> str:
        return f"{_slug(self.topic_prefix)}_{_slug(device_id)}"

    def discovery(self, component: str, node_id: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{node_id}/{object_id}/config"


def format_timestamp(ts: datetime) -> str:
    """ISO-8601 UTC with milliseconds and Z; a naive datetime is taken to be UTC already."""
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _dumps(doc: Mapping[str, object]) -> bytes:
    try:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"cannot serialise payload: {exc}") from exc


def state_payload(dr: DeviceReading, extra: Mapping[str, object] | None = None) -> bytes:
    """The retained state document (docs/mqtt.md), compact JSON in UTF-8.

    ``extra`` adds derived fields after the measured ones (trend, soc_estimated, ...).
    """
    doc: dict[str, object] = {
        "device_id": dr.device.device_id,
        "address": dr.device.address,
        "name": dr.device.name,
        "model": dr.device.model,
        "timestamp": format_timestamp(dr.timestamp),
        "seq": dr.seq,
    }
    for name in MEASUREMENT_FIELDS:
        value = getattr(dr.reading, name)
        if value is not None and not math.isfinite(value):
            raise PayloadError(f"{dr.device.device_id}: {name} is {value}, not a number")
        doc[name] = value
    state = dr.reading.state
    doc["state"] = None if state is None else str(state)
    doc["device_state"] = dr.reading.device_state
    doc["rssi"] = dr.rssi
    if dr.gateway is not None:  # several gateways: (device_id, gateway, seq) is unique
        doc["gateway"] = dr.gateway
    if dr.radio is not None:  # the adapter (or proxy) that read it
        doc["radio"] = dr.radio
    if extra:
        doc.update(extra)
    return _dumps(doc)


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """How one payload field appears in Home Assistant.

    device_class and unit pairs are ones HA accepts for that class (sensor docs: voltage V,
    battery %, temperature °C, current A, power W, duration min, energy kWh). HA allows only
    total / total_increasing for energy, so the daily solar yield (which drops to 0 at
    midnight) is total_increasing; everything else is a measurement.
    """

    name: str
    device_class: str | None
    unit: str | None
    state_class: str | None = "measurement"
    precision: int | None = None
    icon: str | None = None
    diagnostic: bool = False


SENSOR_SPECS: Final[Mapping[str, SensorSpec]] = {
    "voltage": SensorSpec("Voltage", "voltage", "V", precision=2),
    "soc": SensorSpec("State of charge", "battery", "%", precision=0),
    "temperature": SensorSpec("Temperature", "temperature", "°C", precision=1),
    "current": SensorSpec("Current", "current", "A", precision=2),
    "power": SensorSpec("Power", "power", "W", precision=1),
    # HA has no device class for electric charge (Ah): a plain numeric sensor.
    "consumed_ah": SensorSpec("Consumed charge", None, "Ah", precision=2, icon="mdi:battery-minus"),
    "remaining_mins": SensorSpec("Time remaining", "duration", "min", precision=0),
    "aux_voltage": SensorSpec("Auxiliary voltage", "voltage", "V", precision=2),
    "solar_power": SensorSpec("Solar power", "power", "W", precision=0),
    "yield_today": SensorSpec(
        "Yield today", "energy", "kWh", state_class="total_increasing", precision=2
    ),
    # Reading.state is an open set (BatteryState or a family's own word, e.g. a Victron
    # charger state), so it is a plain text sensor: an enum would reject unknown words.
    "state": SensorSpec("Battery state", None, None, state_class=None, icon="mdi:car-battery"),
    "ac_apparent_power": SensorSpec("AC output power", "apparent_power", "VA", precision=0),
    # What the device says it does ("bulk", "inverting", ...): text, like state.
    "device_state": SensorSpec(
        "Device state", None, None, state_class=None, icon="mdi:state-machine"
    ),
    "rssi": SensorSpec("Signal strength", "signal_strength", "dBm", precision=0, diagnostic=True),
    # Derived by battery-hawk's insight (docs/mqtt.md), not measured by the monitor.
    "trend": SensorSpec("Trend", None, None, state_class=None, icon="mdi:chart-line"),
    "voltage_slope": SensorSpec("Voltage slope", None, "V/h", precision=3,
                                icon="mdi:slope-uphill"),
    "time_to_low_mins": SensorSpec("Time to low voltage", "duration", "min", precision=0),
    "soc_estimated": SensorSpec("Estimated state of charge", "battery", "%", precision=0),
    "connection_quality": SensorSpec("Connection quality", None, None, state_class=None,
                                     icon="mdi:bluetooth-connect", diagnostic=True),
    "success_rate": SensorSpec("Read success rate", None, "%", precision=1,
                               icon="mdi:percent", diagnostic=True),
}

DISCOVERABLE_FIELDS: Final[tuple[str, ...]] = tuple(SENSOR_SPECS)

ALERT_NAMES: Final[Mapping[str, str]] = {
    "low_voltage": "Low voltage",
    "low_soc": "Low state of charge",
    "high_temperature": "High temperature",
    "low_temperature": "Charging below freezing",
    "stale": "No recent reading",
    "poor_connection": "Poor connection",
    "high_error_rate": "High read error rate",
}


def reported_fields(dr: DeviceReading) -> tuple[str, ...]:
    """The discoverable fields this reading carries, in DISCOVERABLE_FIELDS order.

    The daemon sends discovery for these, and again when a later reading adds a field.
    """
    present = set(dr.reading.measurements())
    if dr.reading.state is not None:
        present.add("state")
    if dr.reading.device_state is not None:
        present.add("device_state")
    if dr.rssi is not None:
        present.add("rssi")
    return tuple(f for f in DISCOVERABLE_FIELDS if f in present)


def _availability(topics: Topics, device_id: str, gateway: bool) -> list[dict[str, str]]:
    return [
        {
            "topic": topic,
            "payload_available": PAYLOAD_ONLINE,
            "payload_not_available": PAYLOAD_OFFLINE,
        }
        for topic in (topics.gateway_status, topics.device_availability(device_id))
        if gateway or topic != topics.gateway_status
    ]


def _origin() -> dict[str, str]:
    return {"name": "battery-hawk", "sw_version": __version__}


def _device_block(device: DeviceInfo, topics: Topics) -> dict[str, object]:
    block: dict[str, object] = {
        "identifiers": [topics.device_identifier(device.device_id)],
        "connections": [["mac", device.address.lower()]],
        "manufacturer": device.manufacturer,
        "model": device.model,
        "name": device.name,
        "via_device": topics.gateway_identifier,
    }
    if device.firmware:
        block["sw_version"] = device.firmware
    return block


def _known_fields(fields: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(fields))
    unknown = [f for f in wanted if f not in SENSOR_SPECS]
    if unknown:
        raise ValueError(f"no sensor description for field(s) {unknown}")
    return wanted


def _known_alerts(alert_kinds: Iterable[str]) -> list[str]:
    kinds = [str(k) for k in dict.fromkeys(alert_kinds)]
    unknown = [k for k in kinds if k not in ALERT_NAMES]
    if unknown:
        raise ValueError(f"unknown alert kind(s) {unknown}")
    return kinds


def discovery_messages(
    device: DeviceInfo,
    fields: Iterable[str],
    topics: Topics,
    expire_after: int,
    alert_kinds: Iterable[str] = (),
    *,
    gateway_availability: bool = True,
    attributes: bool = False,
) -> list[Message]:
    """One retained discovery document per sensor field and per alert kind of a device.

    ``attributes=True`` gives each sensor the device's retained attributes topic as its
    ``json_attributes_topic`` (Leagend monitors: ``held_elsewhere``).
    ``gateway_availability=False`` (several gateways on one site) leaves the gateway's
    status out of availability, so the documents are the same whichever gateway reads
    the device, but for ``via_device``.

    Sensors read the retained JSON state topic; each is unavailable unless both the gateway
    and the device say online (availability_mode all), and goes unavailable after
    expire_after seconds without a state message. Alert binary sensors read the retained
    ``.../alerts`` topic, so HA shows the current alert state after a restart; they carry
    no expire_after because that topic only changes on a transition.
    """
    if expire_after <= 0:
        raise ValueError("expire_after must be a positive number of seconds")
    did = device.device_id
    node = topics.device_identifier(did)
    common: dict[str, object] = {
        "availability": _availability(topics, did, gateway_availability),
        "availability_mode": "all",
        "device": _device_block(device, topics),
        "origin": _origin(),
    }
    messages: list[Message] = []
    for name in _known_fields(fields):
        spec = SENSOR_SPECS[name]
        doc: dict[str, object] = {
            "name": spec.name,
            "unique_id": f"{node}_{name}",
            "default_entity_id": f"sensor.{node}_{name}",
            "state_topic": topics.device_state(did),
            "value_template": f"{{{{ value_json.{name} }}}}",
            "expire_after": expire_after,
        }
        for key, value in (
            ("device_class", spec.device_class),
            ("unit_of_measurement", spec.unit),
            ("state_class", spec.state_class),
            ("suggested_display_precision", spec.precision),
            ("icon", spec.icon),
            ("entity_category", "diagnostic" if spec.diagnostic else None),
            ("json_attributes_topic", topics.device_attributes(did) if attributes else None),
        ):
            if value is not None:
                doc[key] = value
        doc.update(common)
        messages.append((topics.discovery("sensor", node, name), _dumps(doc)))
    for kind in _known_alerts(alert_kinds):
        pick = f"value_json.alerts.get('{kind}', {{}})"
        doc = {
            "name": ALERT_NAMES[kind],
            "unique_id": f"{node}_alert_{kind}",
            "default_entity_id": f"binary_sensor.{node}_alert_{kind}",
            "device_class": "problem",
            "state_topic": topics.device_alerts(did),
            "value_template": f"{{{{ 'ON' if {pick}.get('active') else 'OFF' }}}}",
            "json_attributes_topic": topics.device_alerts(did),
            "json_attributes_template": f"{{{{ {pick} | tojson }}}}",
            **common,
        }
        messages.append((topics.discovery("binary_sensor", node, f"alert_{kind}"), _dumps(doc)))
    return messages


# Diagnostic sensors of the gateway, read from its stats document:
# object_id -> (name, value template, device_class, unit, state_class, icon)
GATEWAY_SENSORS: Final[Mapping[str, tuple[str, str, str | None, str | None, str | None,
                                          str | None]]] = {
    "mqtt_state": ("MQTT state", "{{ value_json.mqtt.connection_state }}", None, None, None,
                   "mdi:lan-connect"),
    "queue_size": ("MQTT queue size", "{{ value_json.mqtt.queue_size }}", None, None,
                   "measurement", "mdi:tray-full"),
    "messages_dropped": ("MQTT messages dropped", "{{ value_json.mqtt.messages_dropped }}",
                         None, None, "total_increasing", "mdi:delete-alert"),
    "readings_per_minute": ("Readings per minute", "{{ value_json.readings_per_minute }}",
                            None, "readings/min", "measurement", "mdi:speedometer"),
    "uptime": ("Uptime", "{{ value_json.uptime_s | int }}", "duration", "s", "measurement",
               None),
}


def gateway_discovery_messages(topics: Topics, stats_expire_after: int = 180) -> list[Message]:
    """The gateway as a device: a connectivity sensor, and diagnostic sensors on its stats.

    Devices point at it with via_device. The stats sensors read the (not retained) stats
    topic and go unavailable after ``stats_expire_after`` seconds without a stats message.
    """
    node = topics.gateway_identifier
    device = {
        "identifiers": [node],
        "manufacturer": "battery-hawk",
        "model": "BLE gateway",
        "name": f"battery-hawk {topics.gateway_id}",
        "sw_version": __version__,
    }
    doc: dict[str, object] = {
        "name": "Connectivity",
        "unique_id": f"{node}_status",
        "default_entity_id": f"binary_sensor.{node}_status",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "state_topic": topics.gateway_status,
        "payload_on": PAYLOAD_ONLINE,
        "payload_off": PAYLOAD_OFFLINE,
        "device": device,
        "origin": _origin(),
    }
    messages = [(topics.discovery("binary_sensor", node, "status"), _dumps(doc))]
    for object_id, (name, template, device_class, unit, state_class, icon) in (
            GATEWAY_SENSORS.items()):
        sensor: dict[str, object] = {
            "name": name,
            "unique_id": f"{node}_{object_id}",
            "default_entity_id": f"sensor.{node}_{object_id}",
            "entity_category": "diagnostic",
            "state_topic": topics.gateway_stats,
            "value_template": template,
            "expire_after": stats_expire_after,
            "availability": [{"topic": topics.gateway_status,
                              "payload_available": PAYLOAD_ONLINE,
                              "payload_not_available": PAYLOAD_OFFLINE}],
            "device": device,
            "origin": _origin(),
        }
        for key, value in (("device_class", device_class), ("unit_of_measurement", unit),
                           ("state_class", state_class), ("icon", icon)):
            if value is not None:
                sensor[key] = value
        messages.append((topics.discovery("sensor", node, object_id), _dumps(sensor)))
    return messages


def removal_messages(
    device_id: str,
    fields: Iterable[str],
    alert_kinds: Iterable[str],
    topics: Topics,
) -> list[Message]:
    """Empty retained payloads: HA deletes the entities, the broker forgets the device.

    Besides every discovery topic this also clears the device's retained state,
    availability and alerts topics, so a removed device leaves nothing behind.
    """
    node = topics.device_identifier(device_id)
    messages: list[Message] = [
        (topics.discovery("sensor", node, name), b"") for name in _known_fields(fields)
    ]
    messages += [
        (topics.discovery("binary_sensor", node, f"alert_{kind}"), b"")
        for kind in _known_alerts(alert_kinds)
    ]
    messages += [
        (topics.device_state(device_id), b""),
        (topics.device_availability(device_id), b""),
        (topics.device_alerts(device_id), b""),
        (topics.device_attributes(device_id), b""),
    ]
    return messages
