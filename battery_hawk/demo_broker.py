"""The user's broker for ``battery-hawk demo --broker``: the forms of its address, the
demo's gateway id there, and the retained status the demo empties when it ends."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
from typing import TYPE_CHECKING

from battery_hawk.mqtt import MQTTInterface, ReconnectionConfig

if TYPE_CHECKING:
    from battery_hawk.app import App

__all__ = ["BROKER_FORMS", "clear_status", "demo_gateway_id", "host_port", "split_broker"]

_log = logging.getLogger(__name__)

BROKER_FORMS = "HOST[:PORT], [IPV6-ADDRESS][:PORT] or mqtt://HOST[:PORT]"
CLEAR_TIMEOUT = 5.0  # seconds to empty the retained status on the user's broker at the end


def demo_gateway_id(hostname: str | None = None, pid: int | None = None) -> str:
    """The gateway id of a demo on the user's broker: ``demo-<host>-<pid>``, so two demos
    on one broker (from two hosts, or two on one) never share an MQTT client id."""
    host = re.sub(r"[^A-Za-z0-9]+", "-", hostname or socket.gethostname())[:24].strip("-")
    return f"demo-{host or 'host'}-{os.getpid() if pid is None else pid}"


_HOST = re.compile(r"[A-Za-z0-9._-]+")  # a host name or IPv4 address
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9_.-]+)?")  # with a zone


def split_broker(text: str) -> tuple[str, int]:
    """``HOST[:PORT]``, ``[IPV6][:PORT]`` or ``mqtt://`` before either -> (host, port);
    the port defaults to 1883. ValueError naming the forms for anything else."""
    rest = text.strip()
    scheme, sep, after = rest.partition("://")
    if sep:
        if scheme.lower() != "mqtt":
            raise ValueError(f"{text!r}: the demo speaks plain MQTT; give {BROKER_FORMS}")
        rest = after
    if any(c in rest for c in "/?#@"):
        raise ValueError(f"{text!r} is not {BROKER_FORMS} (no user, path or query; "
                         "--username and --password log in)")
    port_text: str | None = None
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or not _IPV6.fullmatch(host) or (tail and not tail.startswith(":")):
            raise ValueError(f"{text!r} is not {BROKER_FORMS}")
        port_text = tail[1:] if tail else None
    elif rest.count(":") > 1:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, [ADDRESS]:PORT; "
                         f"the forms are {BROKER_FORMS}")
    else:
        host, colon, number = rest.partition(":")
        port_text = number if colon else None
        if not _HOST.fullmatch(host):
            raise ValueError(f"{text!r} is not {BROKER_FORMS}")
    if port_text is None:
        return host, 1883
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number 1..65535 ({BROKER_FORMS})")
    return host, int(port_text)


def host_port(host: str, port: int) -> str:
    """host:port as one writes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def clear_status(app: App) -> None:
    """Empty the gateway's retained status on the user's broker, after its ``offline``:
    the demo leaves the broker as it found it. Through a second, short connection (the
    app's own says ``offline`` as its goodbye).

    Also when the app never saw its first connection made: a stop while it was being
    made leaves the Last Will (``offline``) with the broker; then the broker is given a
    second. Skipped when every attempt failed: such a broker holds nothing of ours.
    """
    mqtt = app.mqtt
    if mqtt is None or mqtt.status_topic is None:
        return
    reached = mqtt.stats.total_connections > 0
    if not reached and mqtt.stats.consecutive_failures:
        return
    wait = CLEAR_TIMEOUT if reached else 1.0
    broker = dataclasses.replace(mqtt.broker, client_id=f"{mqtt.broker.client_id}-bye")
    bye = MQTTInterface(broker, ReconnectionConfig(
        max_retries=0, initial_retry_delay=0.2, max_retry_delay=0.5,
        connection_timeout=wait, operation_timeout=wait))
    await bye.start()
    try:
        await bye.publish(mqtt.status_topic, b"", qos=1, retain=True)
        if not await bye.flush(wait) and reached:
            _log.warning("could not empty %s on your broker; it keeps `offline`",
                         mqtt.status_topic)
    finally:
        await bye.disconnect(flush_timeout=0)
