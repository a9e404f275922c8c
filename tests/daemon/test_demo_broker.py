"""`battery-hawk demo --broker`: the simulated devices against a broker the user runs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable

import pytest

from battery_hawk.cli import main
from tests.support.brokers import Mosquitto, Subscriber, mosquitto, mqtt_subscriber, publish_once

__all__ = ["mosquitto", "mqtt_subscriber"]

Subscribe = Callable[..., Awaitable[Subscriber]]


async def _retained(port: int, subscribe: Subscribe) -> dict[str, bytes]:
    """What a new subscriber is given as retained (everything before a marker)."""
    sub = await subscribe(port, "#")
    await publish_once(port, "test/marker", b"end")
    await sub.wait_for(lambda m: ("test/marker", b"end") in m, timeout=10)
    found: dict[str, bytes] = {}
    for topic, payload in sub.messages:
        if topic == "test/marker":
            break
        found[topic] = payload
    return found


async def test_demo_against_your_broker_shows_its_devices_then_cleans_up(
    mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    sub = await mqtt_subscriber(mosquitto.port, "#")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "demo", "--broker", f"127.0.0.1:{mosquitto.port}",
        "--duration", "8", "--no-live", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert f"your broker 127.0.0.1:{mosquitto.port}" in out.decode()
    assert "embedded" not in out.decode() and "Traceback" not in err.decode()
    states = {t: json.loads(p) for t, p in sub.messages if t.endswith("/state") and p}
    assert len(states) == 6
    assert any(t.startswith("homeassistant/sensor/battery_hawk_5a") for t, _ in sub.messages)
    retained = await _retained(mosquitto.port, mqtt_subscriber)
    left = [t for t in retained if "5a0000" in t]
    assert left == []  # the demo's devices are gone from HA and from the broker
    gateway = [t for t in retained if t.startswith("homeassistant/") and "gateway_demo" in t]
    assert gateway == []  # and so is the gateway device they hung under


@pytest.mark.parametrize(("argv", "words"), [
    (["--broker", "h:1883", "--fault", "broker"], "cannot stop yours"),
    (["--broker", "h", "--listen"], "--listen is for the embedded broker"),
    (["--username", "u"], "--username goes with --broker"),
    (["--broker", "h:99999"], "--broker"),
])
def test_demo_options_that_do_not_go_together_are_usage_errors(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *argv]) == 2
    assert words in capsys.readouterr().err


async def test_listen_opens_the_embedded_broker_to_other_hosts() -> None:
    import psutil

    from tests.support.brokers import free_port, port_accepts, wait_until

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "demo", "--listen", "--port", str(port),
        "--duration", "60", "--no-live", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        await wait_until(lambda: port_accepts(port), timeout=30)
        listening = {c.laddr.ip for c in psutil.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert listening == {"0.0.0.0"}
    assert proc.returncode == 0, err.decode()
    assert "all interfaces" in out.decode()
