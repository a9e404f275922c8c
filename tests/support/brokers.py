"""Real MQTT brokers and an independent subscriber, for tests and benchmarks of any area.

* :class:`Mosquitto` runs ``/usr/sbin/mosquitto`` on a free loopback port with its own
  config; :meth:`Mosquitto.kill` SIGKILLs it and :meth:`Mosquitto.start` brings it back
  on the same port. Fixture: ``mosquitto`` (function scope, already started).
* :class:`AmqttBroker` is the package's embedded amqtt broker (the demo's), run inside
  the test's event loop. Fixture: ``amqtt_broker`` (started).
* :class:`Subscriber` is a raw aiomqtt client (not battery_hawk code) that collects what
  arrives on a topic filter and can reconnect after a broker restart. Fixture:
  ``mqtt_subscriber`` - an async factory ``await mqtt_subscriber(port, "topic/#")``.
* :class:`TcpGate` is a loopback TCP relay whose door the test opens and closes, to
  decide *when* a client may (re)connect.

Use them from any test package with ``from tests.support.brokers import *`` in its
conftest.py, or import the classes directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from battery_hawk.simulator.broker import EmbeddedBroker as AmqttBroker

__all__ = [
    "AmqttBroker",
    "Mosquitto",
    "Subscriber",
    "TcpGate",
    "amqtt_broker",
    "free_port",
    "mosquitto",
    "mqtt_subscriber",
    "port_accepts",
    "publish_once",
    "wait_until",
]

MOSQUITTO = os.environ.get("BATTERY_HAWK_MOSQUITTO", "/usr/sbin/mosquitto")
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = HOST) -> bool:
    """True if a TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto:
    """A private mosquitto on a free loopback port; kill it and start it again at will."""

    def __init__(self, port: int | None = None, extra_config: str = "",
                 workdir: Path | None = None) -> None:
        self.host = HOST
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bh-mosquitto-"))
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.config_path.write_text(
            f"listener {self.port} {HOST}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # mosquitto drops QoS 1 messages for a subscriber that has more than 1000
            # queued (max_queued_messages); a Python test subscriber falls that far
            # behind a fast publisher, and the loss would be the broker's, not ours.
            "max_queued_messages 0\n"
            # Started as root, mosquitto would switch to user "mosquitto" and could not
            # write its log into our private directory; ignored when not root.
            f"user {getpass.getuser()}\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            f"{extra_config}\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start it and return once its port accepts connections (bounded)."""
        self.launch()
        deadline = time.monotonic() + timeout
        while not port_accepts(self.port):
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not listen on {self.port} in {timeout} s")
            time.sleep(0.01)

    async def start_async(self, timeout: float = 10.0) -> None:
        """As :meth:`start`, without blocking the running event loop."""
        self.launch()
        async with asyncio.timeout(timeout):
            while True:
                self._check_alive()
                try:
                    _, writer = await asyncio.open_connection(HOST, self.port)
                except OSError:
                    await asyncio.sleep(0.01)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return

    def launch(self) -> None:
        """Start the process without waiting for the port."""
        if self.running:
            raise RuntimeError("mosquitto is already running")
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, in-memory sessions and retained messages gone."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(timeout=10)
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        self._proc = None

    def restart(self, timeout: float = 10.0) -> None:
        """Kill and start again on the same port."""
        self.kill()
        self.start(timeout)

    def close(self) -> None:
        """Kill it and remove its files."""
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        """The broker's own log so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
            raise RuntimeError(f"mosquitto exited with {self._proc.returncode}: {err}"
                               f"{self.log()}")

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscriber:
    """An independent raw aiomqtt client collecting messages on one topic filter.

    ``messages`` holds ``(topic, payload)`` in arrival order. After a broker restart
    call :meth:`reconnect`; it returns once subscribed again.
    """

    def __init__(self, port: int, topic_filter: str, *, host: str = HOST, qos: int = 1,
                 client_id: str | None = None) -> None:
        self.host = host
        self.port = port
        self.topic_filter = topic_filter
        self.qos = qos
        self.client_id = client_id
        self.messages: list[tuple[str, bytes]] = []
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    @property
    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.messages]

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe, retrying until ``timeout`` (the broker may be starting)."""
        async with asyncio.timeout(timeout):
            while True:
                client = aiomqtt.Client(self.host, self.port, identifier=self.client_id,
                                        timeout=2, logger=_QUIET)
                try:
                    await client.__aenter__()
                    await client.subscribe(self.topic_filter, qos=self.qos)
                except aiomqtt.MqttError:
                    await _discard(client)
                    await asyncio.sleep(0.02)
                    continue
                break
        self._client = client
        self._reader = asyncio.create_task(self._read(client), name="test-subscriber-reader")

    async def reconnect(self, timeout: float = 10.0) -> None:
        """Drop the old connection (dead or not) and subscribe anew."""
        await self.stop()
        await self.start(timeout)

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait({reader})
        client, self._client = self._client, None
        if client is not None:
            await _discard(client, graceful=True)

    async def wait_for(self, predicate: Callable[[list[tuple[str, bytes]]], bool],
                       timeout: float = 10.0) -> None:
        """Wait (bounded) until ``predicate(messages)`` holds; TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while not predicate(self.messages):
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_count(self, count: int, timeout: float = 10.0) -> None:
        """Wait (bounded) until at least ``count`` messages have arrived."""
        await self.wait_for(lambda msgs: len(msgs) >= count, timeout)

    async def _read(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in client.messages:
                payload = message.payload
                data = payload if isinstance(payload, bytes) else str(payload).encode()
                self.messages.append((message.topic.value, data))
                self._arrived.set()

    async def __aenter__(self) -> Subscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class TcpGate:
    """A loopback TCP relay to a broker whose door, and traffic, the test controls.

    Point the client under test at ``gate.port``.

    * ``shut()`` refuses new connections (existing relays keep running until either side
      closes); ``open()`` lets them in.
    * ``freeze()`` stops relaying on existing connections without closing them: a
      half-open link, as after a cable is pulled.
    * ``hold()`` accepts new clients but keeps their bytes until ``release()``: with TLS
      this keeps paho's blocking connect inside its handshake.
    * ``drop_next()`` throws away the next chunk the client sends (one whole MQTT
      packet when the client sends one small packet at a time).
    * ``cut()`` aborts every relayed connection at once (both sides see a reset).

    ``accepted`` counts clients let in; ``open_clients`` those whose socket is still open.
    """

    def __init__(self, target_port: int, target_host: str = HOST) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.is_open = True
        self.accepted = 0
        self.open_clients = 0
        self.to_drop = 0
        self._released = asyncio.Event()
        self._released.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing: list[asyncio.Event] = []
        self._sockets: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, self.port)

    def shut(self) -> None:
        self.is_open = False

    def open(self) -> None:
        self.is_open = True

    def freeze(self) -> None:
        for flowing in self._flowing:
            flowing.clear()

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def drop_next(self) -> None:
        self.to_drop = 1

    def cut(self) -> None:
        for writer in list(self._sockets):
            writer.transport.abort()
        self._sockets.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_open:
            writer.transport.abort()
            return
        self.accepted += 1
        self.open_clients += 1
        try:
            await self._released.wait()
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.open_clients -= 1
            writer.transport.abort()
            return
        flowing = asyncio.Event()
        flowing.set()
        self._flowing.append(flowing)
        self._sockets.update((writer, up_writer))
        self._spawn(self._pipe(up_reader, writer, flowing, from_client=False))
        down = self._spawn(self._pipe(reader, up_writer, flowing, from_client=True))
        down.add_done_callback(lambda _: self._client_gone(writer))

    def _client_gone(self, writer: asyncio.StreamWriter) -> None:
        self.open_clients -= 1
        writer.transport.abort()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name="test-tcpgate-pipe")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    flowing: asyncio.Event, *, from_client: bool) -> None:
        try:
            while data := await src.read(65536):
                await flowing.wait()
                if from_client and self.to_drop:
                    self.to_drop -= 1
                    continue
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()

    async def __aenter__(self) -> TcpGate:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def wait_until(condition: Callable[[], object], timeout: float = 10.0,
                     step: float = 0.01) -> None:
    """Poll ``condition()`` until it is true, bounded by ``timeout`` (TimeoutError)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - a condition on someone else's state
            await asyncio.sleep(step)


async def publish_once(port: int, topic: str, payload: bytes | str, *, qos: int = 1,
                       retain: bool = False, host: str = HOST) -> None:
    """Publish one message with a raw aiomqtt client (connect, publish, disconnect)."""
    async with aiomqtt.Client(host, port, timeout=5, logger=_QUIET) as client:
        await client.publish(topic, payload, qos=qos, retain=retain)


_QUIET = logging.getLogger("tests.support.brokers.paho")
_QUIET.setLevel(logging.CRITICAL)


async def _discard(client: aiomqtt.Client, graceful: bool = False) -> None:
    """Release a raw aiomqtt client whether or not its link is alive."""
    if graceful:
        with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
            async with asyncio.timeout(2):
                await client.__aexit__(None, None, None)
    paho = client._client
    with contextlib.suppress(Exception):
        paho._sock_close()
    for future in (client._connected, client._disconnected):
        if future.done() and not future.cancelled():
            future.exception()
    misc = client._misc_task
    if misc is not None and not misc.done():
        misc.cancel()
        await asyncio.wait({misc}, timeout=1)


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A started private mosquitto (function scope); ``.kill()`` / ``.start()`` it."""
    if not Path(MOSQUITTO).exists():
        pytest.fail(f"{MOSQUITTO} is missing: install the mosquitto package")
    broker = Mosquitto()
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
async def amqtt_broker() -> AsyncIterator[AmqttBroker]:
    """A started embedded amqtt broker in the test's event loop."""
    broker = AmqttBroker()
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@pytest.fixture
async def mqtt_subscriber() -> AsyncIterator[Callable[..., Awaitable[Subscriber]]]:
    """Factory: ``sub = await mqtt_subscriber(port, "topic/#")``; stopped at teardown."""
    made: list[Subscriber] = []

    async def make(port: int, topic_filter: str, **kwargs: object) -> Subscriber:
        sub = Subscriber(port, topic_filter, **kwargs)  # type: ignore[arg-type]
        await sub.start()
        made.append(sub)
        return sub

    try:
        yield make
    finally:
        for sub in made:
            await sub.stop()
