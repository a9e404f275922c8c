"""Several gateways on one site: who reads which device, agreed through the MQTT broker."""

from battery_hawk.site.messages import SiteTopics
from battery_hawk.site.ownership import Action, Heard, LeaseMessage, LeaseView, Ownership, Report
from battery_hawk.site.service import SiteService

__all__ = [
    "Action",
    "Heard",
    "LeaseMessage",
    "LeaseView",
    "Ownership",
    "Report",
    "SiteService",
    "SiteTopics",
]
