"""`battery-hawk demo` as a newcomer runs it: readings arrive at an outside subscriber."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.support.brokers import Subscriber, free_port


async def test_demo_readings_reach_a_subscriber_and_ctrl_c_ends_it_quietly() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "demo", "--duration", "90", "--port", str(port),
        "--no-live", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    sub = Subscriber(port, "battery_hawk/device/+/state")
    try:
        await sub.start(timeout=20)  # retries until the demo's broker is up
        await sub.wait_for(
            lambda m: len({t for t, _ in m}) == 6 and len(m) >= 18, timeout=60)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the demo stops in order
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        await sub.stop()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert f"mosquitto_sub -h 127.0.0.1 -p {port}" in text and "demo ended" in text
    models = {json.loads(p)["model"] for _, p in sub.messages}
    assert {"BM6", "BM7", "BM2", "SmartShunt 500A/50mV", "Battery Service"} < models
    solar = [json.loads(p) for _, p in sub.messages if json.loads(p)["solar_power"] is not None]
    assert solar and solar[0]["name"].startswith("SmartSolar")
    assert "Traceback" not in err.decode() and "WARNING" not in err.decode()


async def test_demo_picks_another_port_when_its_port_is_taken() -> None:
    port = free_port()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "battery_hawk", "demo", "--duration", "1", "--port",
            str(port), "--no-live", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        server.close()
        await server.wait_closed()
    assert proc.returncode == 0, err.decode()
    assert f"port {port} is taken" in out.decode()


async def test_the_embedded_broker_is_not_fooled_by_another_listener_on_its_port() -> None:
    from battery_hawk.simulator.broker import BrokerProcess

    port = free_port()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:  # the port accepts connections, but not the broker's: its start must fail
        with pytest.raises(RuntimeError, match=str(port)):
            await BrokerProcess(port).start(timeout=30)
    finally:
        server.close()
        await server.wait_closed()


async def test_ports_taken_between_the_check_and_the_bind_are_replaced(
    tmp_path: Path,
) -> None:
    """Two demos starting at once both find 1883 and 9105 free; the second to bind must
    move on to other ports, not exit."""
    from battery_hawk.app import App
    from battery_hawk.demo import _start_app, _start_broker, demo_config, demo_fleet
    from battery_hawk.simulator.devices import SimTransport

    taken = [free_port(), free_port()]
    servers = [await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", p)
               for p in taken]
    transport = SimTransport(demo_fleet(2))
    broker = app = None
    try:
        broker = await _start_broker(taken[0], "127.0.0.1", taken[0])
        assert broker.port != taken[0]

        def make_app(http_port: int) -> App:
            return App(demo_config(transport, port=broker.port, interval=2.0,
                                   storage=str(tmp_path), http_port=http_port))

        app = await _start_app(make_app, taken[1])
        assert app.http is not None and app.http.port not in (0, taken[1])
    finally:
        if app is not None:
            await app.stop()
        if broker is not None:
            await broker.stop()
        for server in servers:
            server.close()
            await server.wait_closed()
