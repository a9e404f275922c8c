"""Topics, the state payload and Home Assistant discovery documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from battery_hawk.errors import PayloadError
from battery_hawk.models import MEASUREMENT_FIELDS, BatteryState, DeviceInfo, DeviceReading, Reading
from battery_hawk.publisher import (
    DISCOVERABLE_FIELDS,
    Topics,
    discovery_messages,
    format_timestamp,
    gateway_discovery_messages,
    removal_messages,
    reported_fields,
    state_payload,
)

# Units Home Assistant accepts per sensor device class (HA sensor docs / DEVICE_CLASS_UNITS).
HA_UNITS = {
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "battery": {"%"},
    "temperature": {"°C", "°F", "K"},
    "current": {"A", "mA"},
    "power": {"W", "kW", "mW", "MW", "GW", "TW"},
    "duration": {"d", "h", "min", "s", "ms", "µs"},
    "energy": {"J", "kJ", "MJ", "GJ", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal"},
    "signal_strength": {"dB", "dBm"},
    "apparent_power": {"VA", "mVA", "kVA"},
}
# State classes HA allows per device class (energy: totals only).
HA_STATE_CLASSES = {"energy": {"total", "total_increasing"}}

TOPICS = Topics(topic_prefix="battery_hawk", gateway_id="garage-pi")
CAR = DeviceInfo(
    device_id="aabbccddee01",
    address="AA:BB:CC:DD:EE:01",
    name="Car battery",
    model="BM6",
    manufacturer="Leagend",
    family="bm6",
    firmware="1.2",
)


def test_topics_follow_the_mqtt_contract() -> None:
    assert TOPICS.gateway_status == "battery_hawk/gateway/garage-pi/status"
    assert TOPICS.gateway_stats == "battery_hawk/gateway/garage-pi/stats"
    assert TOPICS.device_state("aabbccddee01") == "battery_hawk/device/aabbccddee01/state"
    assert TOPICS.device_availability("d1") == "battery_hawk/device/d1/availability"
    assert TOPICS.device_alert("d1") == "battery_hawk/device/d1/alert"
    assert TOPICS.device_alerts("d1") == "battery_hawk/device/d1/alerts"
    assert TOPICS.ha_status == "homeassistant/status"


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "a#"])
def test_topics_reject_ids_that_would_break_the_topic_tree(bad: str) -> None:
    with pytest.raises(ValueError):
        TOPICS.device_state(bad)
    with pytest.raises(ValueError):
        Topics(topic_prefix="battery_hawk", gateway_id=bad)


def test_timestamp_is_utc_with_milliseconds_and_z() -> None:
    local = datetime(2026, 11, 22, 20, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert format_timestamp(local) == "2026-11-22T19:00:00.123Z"
    assert format_timestamp(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"


def test_state_payload_is_the_documented_document() -> None:
    dr = DeviceReading(
        device=CAR,
        reading=Reading(voltage=12.84, soc=87, temperature=21.0, state=BatteryState.NORMAL),
        timestamp=datetime(2026, 11, 22, 19, 0, 0, 123000, tzinfo=UTC),
        seq=1234,
        rssi=-67,
    )
    assert state_payload(dr) == (
        b'{"device_id":"aabbccddee01","address":"AA:BB:CC:DD:EE:01","name":"Car battery",'
        b'"model":"BM6","timestamp":"2026-11-22T19:00:00.123Z","seq":1234,'
        b'"voltage":12.84,"soc":87,"temperature":21.0,"current":null,"power":null,'
        b'"consumed_ah":null,"remaining_mins":null,"aux_voltage":null,"solar_power":null,'
        b'"yield_today":null,"ac_apparent_power":null,"state":"normal","device_state":null,'
        b'"rssi":-67}'
    )


def test_state_payload_has_null_for_unreported_fields_and_no_state() -> None:
    dr = DeviceReading(CAR, Reading(voltage=12.5), datetime(2026, 1, 1, tzinfo=UTC), 1)
    doc = json.loads(state_payload(dr))
    assert doc["voltage"] == 12.5
    assert all(doc[f] is None for f in MEASUREMENT_FIELDS if f != "voltage")
    assert doc["state"] is None and doc["rssi"] is None


def test_state_payload_rejects_a_non_finite_value() -> None:
    dr = DeviceReading(CAR, Reading(voltage=float("nan")), datetime(2026, 1, 1, tzinfo=UTC), 1)
    with pytest.raises(PayloadError):
        state_payload(dr)


def _docs(messages: list[tuple[str, bytes]]) -> dict[str, dict[str, object]]:
    return {topic: json.loads(payload) for topic, payload in messages}


ALL_ALERTS = ("low_voltage", "low_soc", "high_temperature")


def test_discovery_has_one_valid_document_per_field_and_alert() -> None:
    messages = discovery_messages(CAR, DISCOVERABLE_FIELDS, TOPICS, 600, ALL_ALERTS)
    docs = _docs(messages)
    assert len(docs) == len(DISCOVERABLE_FIELDS) + len(ALL_ALERTS)
    for topic, doc in docs.items():
        component = topic.split("/")[1]
        assert topic.startswith("homeassistant/") and topic.endswith("/config")
        assert component in {"sensor", "binary_sensor"}
        for key in ("name", "unique_id", "state_topic", "value_template", "device"):
            assert key in doc, (topic, key)
        assert str(doc["default_entity_id"]).startswith(f"{component}.")


def test_discovery_units_match_the_device_class() -> None:
    docs = _docs(discovery_messages(CAR, DISCOVERABLE_FIELDS, TOPICS, 600))
    for topic, doc in docs.items():
        device_class = doc.get("device_class")
        if device_class is None:
            continue
        assert doc["unit_of_measurement"] in HA_UNITS[str(device_class)], topic
        allowed = HA_STATE_CLASSES.get(str(device_class), {"measurement"})
        assert doc["state_class"] in allowed, topic


def test_discovery_of_a_bm6_matches_the_design() -> None:
    docs = _docs(discovery_messages(CAR, ["voltage", "soc", "temperature"], TOPICS, 300))
    voltage = docs["homeassistant/sensor/battery_hawk_aabbccddee01/voltage/config"]
    assert voltage == {
        "name": "Voltage",
        "unique_id": "battery_hawk_aabbccddee01_voltage",
        "default_entity_id": "sensor.battery_hawk_aabbccddee01_voltage",
        "state_topic": "battery_hawk/device/aabbccddee01/state",
        "value_template": "{{ value_json.voltage }}",
        "expire_after": 300,
        "device_class": "voltage",
        "unit_of_measurement": "V",
        "state_class": "measurement",
        "suggested_display_precision": 2,
        "availability": [
            {
                "topic": "battery_hawk/gateway/garage-pi/status",
                "payload_available": "online",
                "payload_not_available": "offline",
            },
            {
                "topic": "battery_hawk/device/aabbccddee01/availability",
                "payload_available": "online",
                "payload_not_available": "offline",
            },
        ],
        "availability_mode": "all",
        "device": {
            "identifiers": ["battery_hawk_aabbccddee01"],
            "connections": [["mac", "aa:bb:cc:dd:ee:01"]],
            "manufacturer": "Leagend",
            "model": "BM6",
            "name": "Car battery",
            "via_device": "battery_hawk_gateway_garage_pi",
            "sw_version": "1.2",
        },
        "origin": voltage["origin"],
    }
    soc = docs["homeassistant/sensor/battery_hawk_aabbccddee01/soc/config"]
    assert (soc["device_class"], soc["unit_of_measurement"]) == ("battery", "%")


def test_solar_yield_is_an_energy_total_and_remaining_time_a_duration() -> None:
    docs = _docs(discovery_messages(CAR, ["yield_today", "remaining_mins"], TOPICS, 60))
    yield_doc = docs["homeassistant/sensor/battery_hawk_aabbccddee01/yield_today/config"]
    assert (yield_doc["device_class"], yield_doc["unit_of_measurement"]) == ("energy", "kWh")
    assert yield_doc["state_class"] == "total_increasing"
    mins = docs["homeassistant/sensor/battery_hawk_aabbccddee01/remaining_mins/config"]
    assert (mins["device_class"], mins["unit_of_measurement"]) == ("duration", "min")


def test_unique_ids_are_unique_within_and_across_devices() -> None:
    other = DeviceInfo("aabbccddee02", "AA:BB:CC:DD:EE:02", "Van", "BM2", "Leagend", "bm2")
    ids = [
        json.loads(payload)["unique_id"]
        for device in (CAR, other)
        for _, payload in discovery_messages(device, DISCOVERABLE_FIELDS, TOPICS, 60, ALL_ALERTS)
    ]
    assert len(ids) == len(set(ids))


def test_alert_binary_sensor_reads_the_retained_alert_state() -> None:
    docs = _docs(discovery_messages(CAR, [], TOPICS, 60, ["low_voltage"]))
    (doc,) = docs.values()
    assert doc["device_class"] == "problem"
    assert doc["state_topic"] == "battery_hawk/device/aabbccddee01/alerts"
    assert "low_voltage" in str(doc["value_template"])
    assert "expire_after" not in doc  # the alerts topic changes only on transitions
    assert doc["availability_mode"] == "all"


def test_state_text_is_a_plain_sensor_without_unit() -> None:
    docs = _docs(discovery_messages(CAR, ["state"], TOPICS, 60))
    (doc,) = docs.values()
    assert doc["value_template"] == "{{ value_json.state }}"
    assert "unit_of_measurement" not in doc and "state_class" not in doc


def test_discovery_refuses_unknown_fields_and_alert_kinds() -> None:
    with pytest.raises(ValueError):
        discovery_messages(CAR, ["humidity"], TOPICS, 60)
    with pytest.raises(ValueError):
        discovery_messages(CAR, [], TOPICS, 60, ["on_fire"])


def test_device_without_firmware_has_no_sw_version() -> None:
    bare = DeviceInfo("d2", "AA:BB:CC:DD:EE:02", "Van", "BM2", "Leagend", "bm2")
    (doc,) = _docs(discovery_messages(bare, ["voltage"], TOPICS, 60)).values()
    assert "sw_version" not in doc["device"]  # type: ignore[operator]


def test_gateway_discovery_creates_the_device_the_batteries_hang_off() -> None:
    docs = _docs(gateway_discovery_messages(TOPICS))
    node = TOPICS.gateway_identifier
    doc = docs[f"homeassistant/binary_sensor/{node}/status/config"]
    assert doc["state_topic"] == TOPICS.gateway_status
    assert doc["device"]["identifiers"] == [TOPICS.gateway_identifier]  # type: ignore[index]
    assert doc["device_class"] == "connectivity"


def test_gateway_has_diagnostic_sensors_on_its_stats() -> None:
    docs = _docs(gateway_discovery_messages(TOPICS, 180))
    node = TOPICS.gateway_identifier
    sensors = {t.split("/")[3]: d for t, d in docs.items() if t.startswith("homeassistant/sensor/")}
    assert set(sensors) == {"mqtt_state", "queue_size", "messages_dropped",
                            "readings_per_minute", "uptime"}
    stats = {"uptime_s": 3600.4, "readings_per_minute": 12.5,
             "mqtt": {"connection_state": "connected", "queue_size": 3, "messages_dropped": 1}}
    for object_id, doc in sensors.items():
        assert doc["state_topic"] == TOPICS.gateway_stats
        assert doc["entity_category"] == "diagnostic" and doc["expire_after"] == 180
        assert doc["unique_id"] == f"{node}_{object_id}"
        assert doc["device"]["identifiers"] == [node]  # type: ignore[index]
        path = str(doc["value_template"]).strip("{} ").split("|")[0].strip()
        value: object = stats
        for key in path.removeprefix("value_json.").split("."):
            assert isinstance(value, dict), path
            value = value[key]
        assert value is not None
    assert sensors["uptime"]["device_class"] == "duration"
    assert sensors["uptime"]["unit_of_measurement"] == "s"


def test_removal_empties_every_discovery_topic_and_retained_device_topic() -> None:
    fields = ["voltage", "soc", "state"]
    published = {t for t, _ in discovery_messages(CAR, fields, TOPICS, 60, ALL_ALERTS)}
    removal = removal_messages(CAR.device_id, fields, ALL_ALERTS, TOPICS)
    assert all(payload == b"" for _, payload in removal)
    removed = {t for t, _ in removal}
    assert published <= removed
    assert removed - published == {
        TOPICS.device_state(CAR.device_id),
        TOPICS.device_availability(CAR.device_id),
        TOPICS.device_alerts(CAR.device_id),
        TOPICS.device_attributes(CAR.device_id),
    }


def test_reported_fields_are_what_the_reading_carries() -> None:
    dr = DeviceReading(CAR, Reading(soc=50, voltage=12.1, state="charging"), datetime.now(UTC), 1)
    assert reported_fields(dr) == ("voltage", "soc", "state")
    assert reported_fields(DeviceReading(CAR, Reading(), datetime.now(UTC), 2, rssi=-80)) == (
        "rssi",
    )


def test_gateway_stats_carry_what_the_diagnostic_sensors_read() -> None:
    import time

    from battery_hawk.runtime import GatewayStats

    stats = GatewayStats()
    started = time.monotonic() - 120.0  # up two minutes
    stats.readings = 30
    doc = stats.snapshot({"connection_state": "connected", "queue_size": 0,
                          "messages_dropped": 0}, [], started)
    assert doc["readings_per_minute"] == pytest.approx(15.0, rel=0.01)
    assert doc["uptime_s"] >= 120.0 and doc["mqtt"]["queue_size"] == 0
    stats.readings = 30  # nothing since the last snapshot
    assert stats.snapshot({}, [], started)["readings_per_minute"] == 0.0
