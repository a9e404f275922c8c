"""Broker settings, the connection state and the stats snapshot."""

from __future__ import annotations

import enum
import ssl
from dataclasses import asdict, dataclass, field
from typing import Any

from battery_hawk.errors import ConfigError

__all__ = ["BrokerSettings", "ConnectionState", "MQTTStats", "TLSSettings", "build_ssl_context"]


class ConnectionState(enum.Enum):
    """Where the interface stands with its broker."""

    DISCONNECTED = "disconnected"  # not started, or stopped by disconnect()
    CONNECTING = "connecting"  # first connection (or after connect()) not yet made
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # the link was lost; backing off and retrying
    FAILED = "failed"  # max_retries exhausted; still probing every max_retry_delay


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """TLS towards the broker; files are PEM paths."""

    enabled: bool = False
    ca_cert: str | None = None  # None: the system trust store
    cert_file: str | None = None  # client certificate, for brokers that require one
    key_file: str | None = None
    insecure: bool = False  # skip host name verification (self-signed lab brokers only)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where the broker is and how to log in."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TLSSettings = field(default_factory=TLSSettings)
    client_id: str | None = None  # None: aiomqtt makes one up
    keepalive: int = 60


@dataclass(frozen=True, slots=True)
class MQTTStats:
    """A snapshot of the interface's counters; ``as_dict()`` is JSON-ready."""

    connection_state: ConnectionState
    total_connections: int  # successful connections
    total_disconnections: int  # established links that ended (lost or closed)
    total_reconnections: int  # successful connections after the first
    messages_published: int  # acknowledged by the broker (QoS 0: written)
    messages_queued: int  # accepted by publish() into the queue
    messages_failed: int  # failed send attempts (each is retried or dropped)
    messages_dropped: int  # dropped_overflow + dropped_retry_limit + spool_evicted
    dropped_overflow: int  # oldest pending dropped because the queue was full
    dropped_retry_limit: int  # dropped after message_retry_limit retries
    messages_rejected: int  # refused by publish() (unserialisable payload, bad topic)
    consecutive_failures: int  # failed connection attempts since the last success
    queue_size: int  # held, not yet acknowledged (memory and spool)
    in_flight: int
    last_connection_attempt: float | None  # Unix time
    last_connected: float | None  # Unix time
    last_error: str | None
    superseded: int = 0  # queued state messages replaced by a newer one for their topic
    spool_enabled: bool = False  # the disk spool is open and working
    spooled: int = 0  # messages waiting on disk only (not yet loaded into memory)
    spool_evicted: int = 0  # oldest readings deleted at storage.max_spool_mb
    dead_letters: int = 0  # messages moved to the dead letters (this run)
    dead_letters_held: int = 0  # rows in the spool's dead-letter table now

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict (the state as its string value)."""
        result = asdict(self)
        result["connection_state"] = self.connection_state.value
        return result


def build_ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """An SSL context from the CA / client certificate files; ConfigError names the bad key."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_cert)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load CA certificate {tls.ca_cert!r}: {exc}",
                          key="mqtt.tls.ca_cert") from exc
    if tls.cert_file:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load client certificate {tls.cert_file!r}: {exc}",
                              key="mqtt.tls.cert_file") from exc
    elif tls.key_file:
        raise ConfigError("key_file given without cert_file", key="mqtt.tls.key_file")
    if tls.insecure:
        context.check_hostname = False
    return context
