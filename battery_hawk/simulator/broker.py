"""An embedded MQTT broker (amqtt) for the demo and the tests: no mosquitto needed.

EmbeddedBroker runs inside the caller's event loop (tests, the example). BrokerProcess runs
the same broker in a child process, so that in the demo the daemon's process holds only
the daemon, as it would beside a real broker: `python -m battery_hawk.simulator.broker`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

from battery_hawk.errors import BatteryHawkError

if TYPE_CHECKING:
    from amqtt.broker import Broker

__all__ = [
    "DEMO_EXTRA_HINT",
    "BrokerProcess",
    "EmbeddedBroker",
    "free_port",
    "port_is_free",
    "quiet_amqtt",
    "require_amqtt",
]

DEMO_EXTRA_HINT = (
    "the demo's embedded MQTT broker needs amqtt (the 'demo' extra), which the daemon does "
    "not. Add it: pipx inject battery-hawk 'amqtt>=0.11,<0.13' (installed with pipx), or "
    "pip install 'amqtt>=0.11,<0.13' in battery-hawk's virtual environment (scripts/demo "
    "does it in a checkout). Or use a broker you have: battery-hawk demo --broker HOST"
)


def require_amqtt() -> None:
    """Raise BatteryHawkError saying how to get amqtt when it is not installed."""
    if importlib.util.find_spec("amqtt") is None:
        raise BatteryHawkError(DEMO_EXTRA_HINT)

_log = logging.getLogger(__name__)

READY = b"listening"  # the child's one line on stdout once its listener is bound


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
        require_amqtt()
        from amqtt.broker import Broker

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


class BrokerProcess:
    """EmbeddedBroker in a child process; stop() and start() again on the same port."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", *, quiet: bool = False) -> None:
        """``quiet``: the child's output goes nowhere (it would scribble over a live view)."""
        self.host = host
        self.port = port or free_port(host)
        self.quiet = quiet
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def start(self, timeout: float = 20.0) -> None:
        """Start the child and return once it listens on its port.

        The child says so on its stdout once its listener is bound: probing the port from
        here could reach another program that took the port meanwhile. RuntimeError if the
        child exits first (e.g. the port is taken) or does not listen within ``timeout``.
        """
        if self._proc is not None:
            return
        require_amqtt()
        self._proc = proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "battery_hawk.simulator.broker",
            "--host", self.host, "--port", str(self.port), "--parent", str(os.getpid()),
            stdout=asyncio.subprocess.PIPE,  # one line: READY (nothing else is written)
            # its own session: Ctrl-C in the terminal reaches the demo only, which then
            # stops in order (flush, offline) before it stops the broker
            start_new_session=True,
            stderr=asyncio.subprocess.DEVNULL if self.quiet else None,
        )
        assert proc.stdout is not None
        line = b""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                line = await proc.stdout.readline()
        if line.strip() != READY:
            await self.stop()
            raise RuntimeError(f"the embedded broker did not listen on {self.port}")

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def __aenter__(self) -> BrokerProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _serve(host: str, port: int, parent: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = EmbeddedBroker(port, host)
    try:
        await broker.start()
    except Exception as exc:  # amqtt wraps a taken port in its own BrokerError
        print(f"battery-hawk broker: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    sys.stdout.buffer.write(READY + b"\n")
    sys.stdout.flush()
    async with broker:
        while not stop.is_set():
            if parent is not None and os.getppid() != parent:
                break  # the demo died without stopping us: do not linger
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def main(argv: list[str] | None = None) -> None:
    """Run the embedded broker until SIGTERM (or until the parent process is gone)."""
    parser = argparse.ArgumentParser(description="battery-hawk's embedded MQTT broker")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--parent", type=int, default=None, help="exit when this pid is gone")
    args = parser.parse_args(argv)
    # amqtt logs our readiness probe (connect, close) and the sessions a --fault stop cuts
    # as errors; in the demo's child they are noise, and a broker that cannot start exits.
    logging.basicConfig(level=logging.CRITICAL)
    asyncio.run(_serve(args.host, args.port, args.parent))


if __name__ == "__main__":
    main()
