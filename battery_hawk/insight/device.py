"""What battery-hawk learns about one device from its recent readings and link (pure).

``DeviceInsight`` keeps a device's voltage window and link window; ``observe`` turns a new
reading into an ``Insight``: trend, slope, time to the low-voltage threshold, a rest-voltage
SoC estimate for devices that report no SoC, and the link's quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from battery_hawk.insight.profile import BatteryProfile
from battery_hawk.insight.quality import LinkReport, LinkWindow
from battery_hawk.insight.trends import Trend, VoltageTrend, classify_trend, hours_to_threshold
from battery_hawk.models import DeviceReading

__all__ = ["DeviceInsight", "Insight", "InsightSettings"]


@dataclass(frozen=True, slots=True)
class InsightSettings:
    """Per-device inputs: the battery, the reading interval (s), the low-voltage threshold."""

    profile: BatteryProfile = field(default_factory=BatteryProfile)
    interval: float = 60.0
    low_voltage: float | None = None
    estimate_soc: bool = True


@dataclass(frozen=True, slots=True)
class Insight:
    """What one reading and the ones before it say.

    voltage_slope in V/h; time_to_low_h in hours (only while discharging); soc_estimated in
    % (only for a device without its own SoC, and only at rest); link the connection
    figures over the last hour.
    """

    trend: Trend | None = None
    voltage_slope: float | None = None
    time_to_low_h: float | None = None
    soc_estimated: float | None = None
    link: LinkReport = field(default_factory=LinkReport)
    estimating: bool = False  # the device reports no SoC and the estimate is on

    def entity_fields(self) -> tuple[str, ...]:
        """The payload fields that get a Home Assistant entity, from the first reading on.

        All of them, so that discovery does not change as figures appear; soc_estimated
        only for a device that gets an estimate.
        """
        return tuple(k for k in _FIELDS if k != "soc_estimated" or self.estimating)

    def payload_fields(self) -> dict[str, object]:
        """The fields this adds to the state document (rounded for people and HA)."""
        link = self.link
        return {
            "trend": None if self.trend is None else str(self.trend),
            "voltage_slope": _round(self.voltage_slope, 3),
            "time_to_low_mins": None if self.time_to_low_h is None
            else round(self.time_to_low_h * 60),
            "soc_estimated": _round(self.soc_estimated, 1),
            "connection_quality": None if link.quality is None else str(link.quality),
            "success_rate": None if link.success_rate is None
            else round(link.success_rate * 100, 1),
        }


_FIELDS = ("trend", "voltage_slope", "time_to_low_mins", "soc_estimated",
           "connection_quality", "success_rate")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class DeviceInsight:
    """The rolling state of one device; feed it readings and failed reads in time order."""

    def __init__(self, settings: InsightSettings, *, window_s: float = 3600.0) -> None:
        self.settings = settings
        self.voltage = VoltageTrend(window_s)
        self.link = LinkWindow(settings.interval, window_s)

    def observe(self, dr: DeviceReading) -> Insight:
        """Add one reading; the insight as of that reading."""
        reading = dr.reading
        at = dr.timestamp.timestamp()
        self.voltage.add(dr.timestamp, reading.voltage)
        self.link.success(at, dr.duration, dr.rssi)
        profile = self.settings.profile
        slope = self.voltage.slope_per_hour()
        state = None if reading.state is None else str(reading.state)
        trend = classify_trend(reading.current, slope, profile.idle_slope, state)
        time_to_low = None
        if trend is Trend.DISCHARGING:
            time_to_low = hours_to_threshold(reading.voltage, slope, self.settings.low_voltage)
        estimating = self.settings.estimate_soc and reading.soc is None
        estimate = None
        if estimating and reading.voltage is not None and trend is Trend.IDLE:
            estimate = profile.rest_soc(reading.voltage)
        return Insight(trend, slope, time_to_low, estimate, self.link.report(at), estimating)

    def failure(self, at: float) -> None:
        """A read that failed at Unix time ``at``."""
        self.link.failure(at)
