"""MQTTInterface and friends; the only package that imports aiomqtt."""

from .backoff import ReconnectionConfig, retry_delay
from .interface import DeadLetterHook, MessageCallback, MQTTInterface
from .payload import encode_payload
from .queue import QueuedMessage
from .settings import BrokerSettings, ConnectionState, MQTTStats, TLSSettings

__all__ = [
    "BrokerSettings",
    "ConnectionState",
    "DeadLetterHook",
    "MQTTInterface",
    "MQTTStats",
    "MessageCallback",
    "QueuedMessage",
    "ReconnectionConfig",
    "TLSSettings",
    "encode_payload",
    "retry_delay",
]
