"""The stages a reading passes through after its coordinator stamped it.

Each stage lives in its own module and can be tested alone; ``battery_hawk.app`` builds
the chain and is the only place that knows the order.
"""

from battery_hawk.pipeline.alerts import AlertStage
from battery_hawk.pipeline.base import Pipeline, ProcessedReading, PublishFn, Stage
from battery_hawk.pipeline.discovery import DiscoveryStage
from battery_hawk.pipeline.insight import InsightStage
from battery_hawk.pipeline.metrics import MetricsStage
from battery_hawk.pipeline.publish import (
    AlertEvents,
    AlertState,
    Outgoing,
    Output,
    PublishStage,
    StateDocument,
    StateOutput,
)
from battery_hawk.pipeline.readings import ReadingsOutput

__all__ = [
    "AlertEvents",
    "AlertStage",
    "AlertState",
    "DiscoveryStage",
    "InsightStage",
    "MetricsStage",
    "Outgoing",
    "Output",
    "Pipeline",
    "ProcessedReading",
    "PublishFn",
    "PublishStage",
    "ReadingsOutput",
    "Stage",
    "StateDocument",
    "StateOutput",
]
