"""Turning what callers publish into bytes, or refusing at once."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from typing import Any

from battery_hawk.errors import PayloadError

__all__ = ["MAX_PACKET", "Payload", "check_size", "encode_payload", "validate_topic"]

Payload = bytes | bytearray | str | dict[str, Any] | list[Any] | int | float | None


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_payload(payload: object) -> bytes:
    """Bytes for ``payload``: bytes as is, str as UTF-8, datetimes as ISO 8601, rest as JSON.

    ``None`` is the empty payload (it clears a retained message). Raises PayloadError.
    """
    if payload is None:
        return b""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, dt.datetime | dt.date | dt.time):
        return payload.isoformat().encode("ascii")
    if isinstance(payload, float) and not math.isfinite(payload):
        raise PayloadError(f"payload {payload!r} is not a finite number")
    try:
        return json.dumps(payload, default=_json_default, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"payload cannot be serialised: {exc}") from exc


# MQTT's remaining-length field tops out at 268,435,455 bytes for the whole packet.
MAX_PACKET = 268_435_455


def check_size(topic: str, payload: bytes) -> None:
    """Raise PayloadError if topic + payload cannot fit in one MQTT packet."""
    if len(payload) + len(topic.encode("utf-8")) + 4 > MAX_PACKET:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds the MQTT packet limit")


def validate_topic(topic: object) -> str:
    """Return ``topic`` if it can be published to, else raise PayloadError."""
    if not isinstance(topic, str) or not topic:
        raise PayloadError(f"topic must be a non-empty string, got {topic!r}")
    if "+" in topic or "#" in topic or "\x00" in topic:
        raise PayloadError(f"topic {topic!r} contains a wildcard or NUL")
    if len(topic.encode("utf-8")) > 65535:
        raise PayloadError("topic longer than 65535 bytes")
    return topic
