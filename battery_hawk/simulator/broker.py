"""An embedded MQTT broker (amqtt) for the demo and the tests: no mosquitto needed."""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

from amqtt.broker import Broker

__all__ = ["EmbeddedBroker", "free_port", "port_is_free", "quiet_amqtt"]

_log = logging.getLogger(__name__)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


class EmbeddedBroker:
    """amqtt on 127.0.0.1, anonymous access; can be stopped and started again on its port.

    Construct and use it inside a running event loop (amqtt binds to the current loop).
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self._broker: Broker | None = None

    @property
    def running(self) -> bool:
        return self._broker is not None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # amqtt refuses every client unless an auth plugin is listed explicitly
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

    async def start(self) -> None:
        if self._broker is not None:
            return
        broker = Broker(self._config())
        await broker.start()
        self._broker = broker

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            with contextlib.suppress(Exception):  # amqtt may complain about dying sessions
                await broker.shutdown()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def quiet_amqtt() -> None:
    """amqtt logs every connect and disconnect at INFO; the demo wants only its problems."""
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
