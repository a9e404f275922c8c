"""The Metrics registry on its own: series life cycle and MQTT stats shapes."""

from __future__ import annotations

import json
from dataclasses import replace
from enum import Enum, auto
from pathlib import Path

from battery_hawk.http import Metrics
from tests.http.conftest import CAR, CAR_READING

LABELS = 'device_id="aabbccddee01"'


class _State(Enum):
    CONNECTED = auto()
    RECONNECTING = auto()


def test_added_device_has_zero_counters_before_its_first_reading() -> None:
    metrics = Metrics(process=False)
    metrics.add_device(CAR)
    text = metrics.render().decode()
    assert f"battery_hawk_readings_total{{{LABELS}}} 0.0" in text
    assert f"battery_hawk_device_online{{{LABELS}}} 0.0" in text


def test_renamed_device_keeps_its_series_and_changes_only_its_info() -> None:
    metrics = Metrics(process=False)
    metrics.observe_reading(CAR_READING)
    metrics.add_device(replace(CAR, name="Starter"))
    text = metrics.render().decode()
    assert 'name="Car battery"' not in text
    assert ('battery_hawk_device_info{address="AA:BB:CC:DD:EE:01",device_id="aabbccddee01",'
            'family="bm6",manufacturer="Leagend",model="BM6",name="Starter"} 1.0') in text
    assert f"battery_hawk_readings_total{{{LABELS}}} 1.0" in text


def test_series_follow_prometheus_conventions() -> None:
    metrics = Metrics()
    metrics.observe_reading(replace(CAR_READING, duration=2.5))
    metrics.observe_reading(replace(CAR_READING, duration=70.0))
    metrics.observe_link(CAR.device_id, 0.9, 2.0)
    metrics.set_alerts(CAR.device_id, {"low_voltage": True, "stale": False})
    text = metrics.render().decode()
    assert "_created" not in text
    assert 'battery_hawk_build_info{python="' in text
    for line in text.splitlines():
        if line.startswith("battery_hawk_") and "{" in line and not line.startswith(
                ("battery_hawk_device_info", "battery_hawk_build_info",
                 "battery_hawk_mqtt_", "battery_hawk_unknown_codes")):
            labels = line[line.index("{") + 1:line.index("}")]
            names = {part.split("=")[0] for part in labels.split(",")}
            assert names <= {"device_id", "kind", "le"}, line
    bucket = 'battery_hawk_read_duration_seconds_bucket{device_id="aabbccddee01",le='
    assert f'{bucket}"3.0"}} 1.0' in text and f'{bucket}"2.0"}} 0.0' in text
    assert f'{bucket}"+Inf"}} 2.0' in text
    assert 'battery_hawk_read_duration_seconds_sum{device_id="aabbccddee01"} 72.5' in text
    assert f"battery_hawk_read_success_ratio{{{LABELS}}} 0.9" in text
    assert f"battery_hawk_connection_quality{{{LABELS}}} 2.0" in text
    assert 'battery_hawk_alert_active{device_id="aabbccddee01",kind="low_voltage"} 1.0' in text
    assert 'battery_hawk_alert_active{device_id="aabbccddee01",kind="stale"} 0.0' in text
    helps = [line for line in text.splitlines() if line.startswith("# HELP battery_hawk_")]
    assert helps and all(len(line.split(" ", 3)[3]) > 12 for line in helps)


def test_remaining_minutes_are_exported_in_seconds() -> None:
    metrics = Metrics(process=False)
    reading = replace(CAR_READING.reading, remaining_mins=90.0)
    metrics.observe_reading(replace(CAR_READING, reading=reading))
    assert f"battery_hawk_remaining_seconds{{{LABELS}}} 5400.0" in metrics.render().decode()


def test_enum_connection_state_is_named_by_its_member() -> None:
    metrics = Metrics(process=False, mqtt_stats=lambda: {"connection_state": _State.RECONNECTING})
    text = metrics.render().decode()
    assert 'battery_hawk_mqtt_connection_state{state="reconnecting"} 1.0' in text
    assert "battery_hawk_mqtt_connected 0.0" in text


def test_a_failing_mqtt_stats_source_does_not_break_the_scrape() -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("gone")

    metrics = Metrics(process=False, mqtt_stats=broken)
    metrics.observe_reading(CAR_READING)
    assert b"battery_hawk_voltage_volts" in metrics.render()


def test_unknown_decoder_codes_are_counted_per_device_and_field() -> None:
    from battery_hawk.protocols import Victron

    case = json.loads((Path(__file__).parents[1] / "protocols" / "captures"
                       / "07_victron_orionxs_offreason_136.json").read_text())
    driver = Victron(bytes.fromhex(case["key"]))
    for frame in case["frames"]:
        driver.decode(bytes.fromhex(frame))
    metrics = Metrics(process=False)
    metrics.bind_unknown_codes(lambda: {"orion": driver.unknown_codes})
    text = metrics.render().decode()
    assert 'battery_hawk_unknown_codes_total{device_id="orion",field="off_reason"} 2.0' in text
