"""The site topics and their JSON payloads (pure; docs/mqtt.md, "Several gateways").

``<prefix>/site/hears/<gateway>``: a gateway's report (what it hears and serves, its view
of the leases); ``<prefix>/site/lease/<device>``: claims, renews and releases. Neither is
retained. A payload that is not what we expect raises :class:`PayloadError` and is
skipped by the caller: one garbled message never costs a lease.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

from battery_hawk.errors import PayloadError
from battery_hawk.publisher import format_timestamp
from battery_hawk.site.ownership import Action, Heard, LeaseMessage, LeaseView, Report

__all__ = [
    "SiteTopics",
    "decode_lease",
    "decode_report",
    "encode_lease",
    "encode_report",
]


@dataclass(frozen=True, slots=True)
class SiteTopics:
    """The topics of one site (one ``topic_prefix`` on one broker)."""

    topic_prefix: str

    def hears(self, gateway: str) -> str:
        return f"{self.topic_prefix}/site/hears/{gateway}"

    def lease(self, device_id: str) -> str:
        return f"{self.topic_prefix}/site/lease/{device_id}"

    @property
    def all_hears(self) -> str:
        return f"{self.topic_prefix}/site/hears/+"

    @property
    def all_leases(self) -> str:
        return f"{self.topic_prefix}/site/lease/+"

    @property
    def all_statuses(self) -> str:
        return f"{self.topic_prefix}/gateway/+/status"

    def last_level(self, topic: str) -> str:
        return topic.rsplit("/", 1)[-1]

    def status_gateway(self, topic: str) -> str:
        """The gateway of a ``<prefix>/gateway/<gateway>/status`` topic."""
        return topic.rsplit("/", 2)[-2]


def _dumps(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _finite(value: object) -> float:
    """A finite float; ValueError for NaN, an infinity or a number too big (1e400 parses
    as an infinity)."""
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _object(payload: bytes) -> dict[str, object]:
    try:
        doc = json.loads(payload, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError("not a JSON object")
    return doc


def encode_report(report: Report, at: datetime) -> bytes:
    """``{"gateway", "time", "devices": {id: {"rssi", "age"}}, "serves", "leases"}``."""
    return _dumps({
        "gateway": report.gateway,
        "time": format_timestamp(at),
        "devices": {did: {"rssi": h.rssi, "age": h.age}
                    for did, h in sorted(report.heard.items())},
        "serves": sorted(report.serves),
        "leases": {did: {"term": v.term, "owner": v.holder}
                   for did, v in sorted(report.leases.items())},
        "origin": report.origin,
        "sent": round(report.sent, 3),
    })


def decode_report(payload: bytes) -> Report:
    """A report; raises PayloadError for anything else."""
    doc = _object(payload)
    try:
        gateway = doc["gateway"]
        devices = doc.get("devices", {})
        serves = doc.get("serves", [])
        leases = doc.get("leases", {})
        if not isinstance(gateway, str) or not isinstance(devices, dict) \
                or not isinstance(serves, list) or not isinstance(leases, dict):
            raise TypeError("wrong types")
        heard = {str(did): Heard(None if h.get("rssi") is None else _finite(h["rssi"]),
                                 _finite(h["age"])) for did, h in devices.items()}
        views = {str(did): LeaseView(int(v["term"]),
                                     None if v.get("owner") is None else str(v["owner"]))
                 for did, v in leases.items()}
        origin, sent = str(doc.get("origin", "")), _finite(doc.get("sent", 0.0))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise PayloadError(f"not a site report: {exc!r}") from None
    return Report(gateway, heard, frozenset(str(s) for s in serves), views, origin, sent)


def encode_lease(message: LeaseMessage, at: datetime) -> bytes:
    """``{"gateway", "action": "claim"|"renew"|"release", "term", "token", "time"}``."""
    return _dumps({
        "gateway": message.gateway,
        "action": str(message.action),
        "term": message.term,
        "token": message.token,
        "sent": round(message.sent, 3),
        "time": format_timestamp(at),
    })


def decode_lease(device_id: str, payload: bytes) -> LeaseMessage:
    """A lease message of ``device_id``; raises PayloadError for anything else."""
    doc = _object(payload)
    try:
        gateway, term = doc["gateway"], doc["term"]
        if not isinstance(gateway, str) or isinstance(term, bool) or not isinstance(term, int):
            raise TypeError("wrong types")
        action = Action(str(doc["action"]))
        token = str(doc.get("token", ""))
        sent = _finite(doc.get("sent", 0.0))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise PayloadError(f"not a lease message: {exc!r}") from None
    return LeaseMessage(device_id, gateway, action, term, token, sent)
