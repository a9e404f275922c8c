"""Pure insight on readings: threshold alerts with hysteresis, voltage trends."""

from battery_hawk.insight.alerts import (
    AlertChange,
    AlertEvaluator,
    AlertKind,
    AlertStatus,
    AlertThresholds,
    alert_payload,
    alert_state_payload,
)
from battery_hawk.insight.trends import VoltageTrend, lead_acid_rest_soc

__all__ = [
    "AlertChange",
    "AlertEvaluator",
    "AlertKind",
    "AlertStatus",
    "AlertThresholds",
    "VoltageTrend",
    "alert_payload",
    "alert_state_payload",
    "lead_acid_rest_soc",
]
