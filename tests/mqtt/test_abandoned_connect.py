"""A connection attempt given up while paho still connects in its thread leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from battery_hawk.mqtt import TLSSettings
from battery_hawk.mqtt.link import Link
from battery_hawk.mqtt.settings import build_ssl_context
from tests.support.brokers import Mosquitto, TcpGate, wait_until

from .conftest import FAST, settings_for
from .pki import make_pki


async def test_open_cancelled_during_the_tls_handshake_closes_the_late_connection(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path)
    tls_listener = f"certfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
    tls = TLSSettings(enabled=True, ca_cert=str(pki.ca_cert))
    with Mosquitto(extra_config=tls_listener) as broker:
        async with TcpGate(broker.port) as relay:
            # held bytes keep paho's blocking connect inside the TLS handshake, in its thread
            relay.hold()
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
