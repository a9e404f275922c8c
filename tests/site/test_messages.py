"""Site reports and lease messages survive the trip through JSON; garbage is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from battery_hawk.config import SiteConfig, parse_config
from battery_hawk.errors import ConfigError, PayloadError
from battery_hawk.models import DeviceInfo, DeviceReading, Reading
from battery_hawk.publisher import Topics, discovery_messages, state_payload
from battery_hawk.site import Action, Heard, LeaseMessage, LeaseView, Report, SiteTopics
from battery_hawk.site.messages import decode_lease, decode_report, encode_lease, encode_report

AT = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)


def test_a_report_round_trips() -> None:
    report = Report("garage", {"aa01": Heard(-61.4, 0.8), "aa02": Heard(None, 2.0)},
                    frozenset({"aa01", "aa02", "aa03"}),
                    {"aa01": LeaseView(7, "garage"), "aa02": LeaseView(3, None)})
    assert decode_report(encode_report(report, AT)) == report


def test_a_lease_message_round_trips_and_names_its_device_by_topic() -> None:
    topics = SiteTopics("battery_hawk")
    message = LeaseMessage("aa01", "garage", Action.CLAIM, 6, "9f1c-41")
    topic = topics.lease("aa01")
    assert topic == "battery_hawk/site/lease/aa01"
    assert decode_lease(topics.last_level(topic), encode_lease(message, AT)) == message


@pytest.mark.parametrize("payload", [
    b"", b"not json", b"[1]", b'{"gateway": 3, "action": "claim", "term": 1}',
    b'{"gateway": "g", "action": "steal", "term": 1}',
    b'{"gateway": "g", "action": "renew", "term": true}',
    b'{"gateway": "g", "action": "renew", "term": 1, "sent": NaN}',
    b'{"gateway": "g", "action": "renew", "term": 1, "sent": 1e400}',
    b"[" * 100_000,  # nesting deeper than the parser's recursion limit
])
def test_a_garbled_lease_message_is_refused(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_lease("aa01", payload)


@pytest.mark.parametrize("payload", [
    b"{}", b'{"gateway": "g", "devices": {"aa01": {"rssi": "loud"}}}',
    b'{"gateway": "g", "serves": "aa01"}', b'{"gateway": "g", "leases": {"aa01": {}}}',
    # numbers a hearing could not have: they would win or lose every comparison
    b'{"gateway": "g", "devices": {"aa01": {"rssi": NaN, "age": 1}}}',
    b'{"gateway": "g", "devices": {"aa01": {"rssi": -60, "age": Infinity}}}',
    b'{"gateway": "g", "devices": {"aa01": {"rssi": -1e400, "age": 1}}}',
    b'{"gateway": "g", "devices": {"aa01": {"rssi": -60, "age": 1' + b"0" * 400 + b'}}}',
    b'{"gateway": "g", "sent": -Infinity}', b"{" * 100_000,
])
def test_a_garbled_report_is_refused(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_report(payload)


def test_the_status_topic_names_its_gateway() -> None:
    assert SiteTopics("bh").status_gateway("bh/gateway/van/status") == "van"


def test_site_discovery_is_the_same_from_every_gateway_but_via_device() -> None:
    car = DeviceInfo("aa01", "AA:BB:CC:DD:EE:01", "Car", "BM6", "Leagend", "bm6")

    def docs(gateway: str) -> dict[str, dict[str, object]]:
        topics = Topics("battery_hawk", gateway)
        return {t: json.loads(p) for t, p in discovery_messages(
            car, ["voltage", "soc"], topics, 180, ["low_voltage"],
            gateway_availability=False)}

    garage, van = docs("garage"), docs("van")
    assert set(garage) == set(van)
    for topic, doc in garage.items():
        assert doc["availability"] == [{"topic": "battery_hawk/device/aa01/availability",
                                        "payload_available": "online",
                                        "payload_not_available": "offline"}]
        assert doc["device"]["via_device"] == "battery_hawk_gateway_garage"
        assert van[topic]["device"]["via_device"] == "battery_hawk_gateway_van"
        assert {**doc, "device": {**doc["device"], "via_device": "-"}} == \
            {**van[topic], "device": {**van[topic]["device"], "via_device": "-"}}


def test_a_reading_of_a_site_names_its_gateway() -> None:
    car = DeviceInfo("aa01", "AA:BB:CC:DD:EE:01", "Car", "BM6", "Leagend", "bm6")
    reading = DeviceReading(car, Reading(voltage=12.6), AT, 5)
    assert "gateway" not in json.loads(state_payload(reading))
    doc = json.loads(state_payload(DeviceReading(car, Reading(voltage=12.6), AT, 5,
                                                 gateway="van")))
    assert (doc["gateway"], doc["seq"]) == ("van", 5)


def test_a_site_is_off_by_default_and_needs_mqtt() -> None:
    devices = {"devices": [{"address": "AA:BB:CC:DD:EE:0F", "type": "bm6"}]}
    assert parse_config(devices, environ={}).site == SiteConfig(enabled=False)
    on = parse_config({**devices, "site": {"enabled": True, "lease_seconds": 10}}, environ={})
    assert (on.site.enabled, on.site.lease_seconds) == (True, 10.0)
    with pytest.raises(ConfigError) as info:
        parse_config({**devices, "mqtt": {"enabled": False}, "site": {"enabled": True}},
                     environ={})
    assert info.value.key == "site.enabled"
    with pytest.raises(ConfigError) as info:
        parse_config({**devices, "site": {"lease_seconds": 0.5}}, environ={})
    assert info.value.key == "site.lease_seconds"
