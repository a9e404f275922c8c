"""Threshold alerts: transitions only, hysteresis, hold time, payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from battery_hawk.insight import (
    AlertChange,
    AlertEvaluator,
    AlertKind,
    AlertThresholds,
    alert_payload,
    alert_state_payload,
)
from battery_hawk.models import Reading

T0 = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)


def feed(evaluator: AlertEvaluator, field: str, values: list[float]) -> list[AlertChange]:
    changes: list[AlertChange] = []
    for i, value in enumerate(values):
        reading = Reading(**{field: value})  # type: ignore[arg-type]
        changes += evaluator.evaluate(reading, T0 + timedelta(minutes=i))
    return changes


def test_low_voltage_raises_once_when_crossing_and_clears_above_the_band() -> None:
    ev = AlertEvaluator(AlertThresholds(low_voltage=11.8))
    changes = feed(ev, "voltage", [12.6, 12.0, 11.7, 11.5, 11.6, 11.95])
    assert changes == [
        AlertChange(AlertKind.LOW_VOLTAGE, True, 11.7, 11.8),
        AlertChange(AlertKind.LOW_VOLTAGE, False, 11.95, 11.8),
    ]


def test_value_hovering_at_the_threshold_does_not_flap() -> None:
    ev = AlertEvaluator(AlertThresholds(low_voltage=11.8))
    hovering = [11.81, 11.79, 11.82, 11.78, 11.85, 11.80, 11.87, 11.79]
    changes = feed(ev, "voltage", hovering)
    assert [c.active for c in changes] == [True]
    assert ev.status()[AlertKind.LOW_VOLTAGE].active


def test_threshold_itself_counts_as_breached() -> None:
    ev = AlertEvaluator(AlertThresholds(low_soc=20, high_temperature=55))
    assert [c.kind for c in feed(ev, "soc", [20])] == [AlertKind.LOW_SOC]
    assert [c.kind for c in feed(ev, "temperature", [55])] == [AlertKind.HIGH_TEMPERATURE]


def test_high_temperature_clears_only_below_threshold_minus_band() -> None:
    ev = AlertEvaluator(AlertThresholds(high_temperature=55))
    changes = feed(ev, "temperature", [50, 56, 54, 53.5, 53])
    assert [(c.active, c.value) for c in changes] == [(True, 56), (False, 53)]


def test_low_soc_uses_its_own_band() -> None:
    ev = AlertEvaluator(AlertThresholds(low_soc=20, soc_band=5))
    changes = feed(ev, "soc", [19, 24, 25])
    assert [(c.active, c.value) for c in changes] == [(True, 19), (False, 25)]


def test_a_reading_without_the_field_keeps_the_alert_state() -> None:
    ev = AlertEvaluator(AlertThresholds(low_voltage=11.8))
    assert feed(ev, "voltage", [11.0])
    assert ev.evaluate(Reading(temperature=20.0), T0 + timedelta(hours=1)) == []
    assert ev.status()[AlertKind.LOW_VOLTAGE].active


def test_unconfigured_alerts_never_fire() -> None:
    ev = AlertEvaluator(AlertThresholds(low_voltage=11.8))
    assert ev.evaluate(Reading(voltage=12.5, soc=1, temperature=99), T0) == []
    assert set(ev.status()) == {AlertKind.LOW_VOLTAGE}
    assert AlertThresholds(low_soc=10, high_temperature=50).kinds() == (
        AlertKind.LOW_SOC,
        AlertKind.HIGH_TEMPERATURE,
    )


def test_hold_ignores_a_short_cranking_dip_but_not_a_lasting_low() -> None:
    ev = AlertEvaluator(AlertThresholds(low_voltage=11.8, hold=30))
    assert ev.evaluate(Reading(voltage=10.2), T0) == []  # cranking
    assert ev.evaluate(Reading(voltage=12.4), T0 + timedelta(seconds=10)) == []
    assert ev.evaluate(Reading(voltage=11.5), T0 + timedelta(seconds=60)) == []
    raised = ev.evaluate(Reading(voltage=11.5), T0 + timedelta(seconds=90))
    assert raised == [AlertChange(AlertKind.LOW_VOLTAGE, True, 11.5, 11.8)]


def test_seeded_active_alert_is_not_raised_again_after_a_restart() -> None:
    ev = AlertEvaluator(AlertThresholds(low_voltage=11.8), active=["low_voltage"])
    assert feed(ev, "voltage", [11.5]) == []
    assert [c.active for c in feed(ev, "voltage", [12.5])] == [False]


def test_negative_band_is_refused() -> None:
    with pytest.raises(ValueError):
        AlertThresholds(low_voltage=11.8, voltage_band=-0.1)


def test_alert_payload_has_the_documented_keys() -> None:
    change = AlertChange(AlertKind.LOW_VOLTAGE, True, 11.7, 11.8)
    assert json.loads(alert_payload("aabbccddee01", change, T0)) == {
        "device_id": "aabbccddee01",
        "kind": "low_voltage",
        "active": True,
        "value": 11.7,
        "threshold": 11.8,
        "timestamp": "2026-11-22T19:00:00.000Z",
    }


def test_alert_state_payload_lists_every_configured_kind() -> None:
    ev = AlertEvaluator(AlertThresholds(low_voltage=11.8, low_soc=20))
    ev.evaluate(Reading(voltage=11.0, soc=50), T0)
    doc = json.loads(alert_state_payload("d1", ev.status(), T0))
    assert doc == {
        "device_id": "d1",
        "timestamp": "2026-11-22T19:00:00.000Z",
        "alerts": {
            "low_voltage": {
                "active": True,
                "value": 11.0,
                "threshold": 11.8,
                "since": "2026-11-22T19:00:00.000Z",
            },
            "low_soc": {"active": False, "value": 50.0, "threshold": 20, "since": None},
        },
    }
