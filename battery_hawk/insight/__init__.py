"""Pure insight on readings: battery profiles, trends, link quality, alerts."""

from battery_hawk.insight.alerts import (
    AlertChange,
    AlertEvaluator,
    AlertKind,
    AlertStatus,
    AlertThresholds,
    alert_payload,
    alert_state_payload,
)
from battery_hawk.insight.device import DeviceInsight, Insight, InsightSettings
from battery_hawk.insight.profile import BatteryProfile, Chemistry
from battery_hawk.insight.quality import LinkReport, LinkWindow, Quality
from battery_hawk.insight.trends import Trend, VoltageTrend, lead_acid_rest_soc

__all__ = [
    "AlertChange",
    "AlertEvaluator",
    "AlertKind",
    "AlertStatus",
    "AlertThresholds",
    "BatteryProfile",
    "Chemistry",
    "DeviceInsight",
    "Insight",
    "InsightSettings",
    "LinkReport",
    "LinkWindow",
    "Quality",
    "Trend",
    "VoltageTrend",
    "alert_payload",
    "alert_state_payload",
    "lead_acid_rest_soc",
]
