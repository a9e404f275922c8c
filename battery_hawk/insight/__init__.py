"""Pure insight on readings: threshold alerts with hysteresis."""

from battery_hawk.insight.alerts import (
    AlertChange,
    AlertEvaluator,
    AlertKind,
    AlertStatus,
    AlertThresholds,
    alert_payload,
    alert_state_payload,
)

__all__ = [
    "AlertChange",
    "AlertEvaluator",
    "AlertKind",
    "AlertStatus",
    "AlertThresholds",
    "alert_payload",
    "alert_state_payload",
]
