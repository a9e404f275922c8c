"""A connection attempt given up while paho still connects in its thread leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from battery_hawk.mqtt import TLSSettings
from battery_hawk.mqtt.link import Link
from battery_hawk.mqtt.settings import build_ssl_context
from tests.support.brokers import HOST, Mosquitto, free_port, wait_until

from .conftest import FAST, settings_for
from .pki import make_pki


class _HeldRelay:
    """A loopback relay to a broker that holds every client's bytes until ``release()``.

    With TLS, paho's blocking ``connect()`` does the handshake in aiomqtt's executor
    thread, so holding the ClientHello keeps that thread inside ``connect()``.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.accepted = 0
        self.open_clients = 0
        self._released = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def release(self) -> None:
        self._released.set()

    async def __aenter__(self) -> _HeldRelay:
        self._server = await asyncio.start_server(self._serve, HOST, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open_clients += 1
        try:
            await self._released.wait()
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
            up = asyncio.create_task(_pipe(up_reader, writer), name="test-relay-up")
            self._tasks.add(up)
            up.add_done_callback(self._tasks.discard)
            await _pipe(reader, up_writer)  # returns when the client closes its socket
        finally:
            self.open_clients -= 1
            writer.transport.abort()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except OSError:
        pass
    finally:
        dst.transport.abort()


async def test_open_cancelled_during_the_tls_handshake_closes_the_late_connection(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path)
    tls_listener = f"certfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
    tls = TLSSettings(enabled=True, ca_cert=str(pki.ca_cert))
    with Mosquitto(extra_config=tls_listener) as broker:
        async with _HeldRelay(broker.port) as relay:
            link = Link(settings_for(relay.port, "bh-abandoned", tls=tls), FAST,
                        will_topic=None, ssl_context=build_ssl_context(tls))
            opening = asyncio.create_task(link.open(), name="test-open")
            await wait_until(lambda: relay.accepted == 1, timeout=5)
            # The connect thread now waits for the server's TLS reply; give up the attempt.
            opening.cancel()
            await asyncio.wait({opening}, timeout=0.1)
            # The thread completes the handshake and sends CONNECT after the attempt was
            # given up; the link must close that socket rather than leave it connected.
            relay.release()
            with contextlib.suppress(asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await opening
            assert opening.cancelled()
            try:
                await wait_until(lambda: relay.open_clients == 0, timeout=3)
            except TimeoutError:
                pytest.fail("the connection opened after the cancel was left connected")
