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
from battery_hawk.demo_broker import BROKER_FORMS, demo_gateway_id, split_broker
from tests.support.brokers import (
    Mosquitto,
    Subscriber,
    free_port,
    mosquitto,
    mqtt_subscriber,
    publish_once,
)

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


async def _demo(*argv: str, stdout: int = asyncio.subprocess.PIPE,
                timeout: float = 60) -> tuple[int, str, str]:
    """`battery-hawk demo ARGV --no-live` to its end: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "demo", *argv, "--no-live", stdout=stdout,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, (out or b"").decode(), err.decode()


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "mqtt://127.0.0.1:{port}"])
async def test_demo_against_your_broker_shows_its_devices_then_cleans_up(
    form: str, mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    sub = await mqtt_subscriber(mosquitto.port, "#")
    code, out, err = await _demo("--broker", form.format(port=mosquitto.port),
                                 "--duration", "8")
    assert code == 0, err
    assert f"your broker 127.0.0.1:{mosquitto.port}\n" in out
    assert "embedded" not in out and "Traceback" not in err
    states = {t: json.loads(p) for t, p in sub.messages if t.endswith("/state") and p}
    assert len(states) == 6
    assert any(t.startswith("homeassistant/sensor/battery_hawk_5a") for t, _ in sub.messages)
    retained = await _retained(mosquitto.port, mqtt_subscriber)
    left = [t for t in retained if "5a0000" in t]
    assert left == []  # the demo's devices are gone from HA and from the broker
    gateway = [t for t in retained if t.startswith("homeassistant/") and "gateway_demo" in t]
    assert gateway == []  # and so is the gateway device they hung under
    assert any(t.startswith("battery_hawk/gateway/demo-") and p == b"offline"
               for t, p in sub.messages)  # its goodbye was said, then emptied:
    assert retained == {}  # the broker is as the demo found it


async def test_two_demos_on_one_broker_do_not_push_each_other_off(
    mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    sub = await mqtt_subscriber(mosquitto.port, "battery_hawk/gateway/+/status")
    broker = f"127.0.0.1:{mosquitto.port}"
    first, second = await asyncio.gather(_demo("--broker", broker, "--duration", "8"),
                                         _demo("--broker", broker, "--duration", "8"))
    for code, _out, err in (first, second):
        assert code == 0, err
        assert err.count("MQTT connected") == 2, err  # its own, and the one that says bye
    onlines = [t for t, p in sub.messages if p == b"online"]
    assert len(onlines) == len(set(onlines)) == 2  # two gateways, each online once


async def test_a_demo_that_never_reaches_your_broker_says_so_and_what_is_lost() -> None:
    code, out, err = await _demo("--broker", f"127.0.0.1:{free_port()}", "--duration", "2")
    assert code == 1, err
    assert "lost with the demo's temporary storage" in out
    assert "kept in the spool" not in out + err and "Traceback" not in err
    assert "never reached your broker 127.0.0.1:" in err


async def test_a_demo_whose_output_reader_goes_away_cleans_your_broker_and_ends_quietly(
    mosquitto: Mosquitto, mqtt_subscriber: Subscribe
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` gone before the demo says anything
    try:
        code, _, err = await _demo("--broker", f"127.0.0.1:{mosquitto.port}",
                                   "--duration", "30", stdout=write_end)
    finally:
        os.close(write_end)
    assert code == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert "battery-hawk stopped" in err  # stopped in order, not killed by the error
    assert await _retained(mosquitto.port, mqtt_subscriber) == {}


async def test_a_demo_on_its_own_broker_piped_into_a_reader_gone_ends_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        code, _, err = await _demo("--port", str(free_port()), "--duration", "30",
                                   stdout=write_end)
    finally:
        os.close(write_end)
    assert code == 141, err
    assert "Traceback" not in err and "battery-hawk stopped" in err


@pytest.mark.parametrize(("text", "expected"), [
    ("broker.lan", ("broker.lan", 1883)),
    ("10.0.0.5:1884", ("10.0.0.5", 1884)),
    ("mqtt://10.0.0.5", ("10.0.0.5", 1883)),
    ("mqtt://10.0.0.5:1884", ("10.0.0.5", 1884)),
    ("[::1]", ("::1", 1883)),
    ("[fd00::5]:1884", ("fd00::5", 1884)),
    ("mqtt://[fd00::5]:1884", ("fd00::5", 1884)),
])
def test_the_broker_forms_the_demo_takes(text: str, expected: tuple[str, int]) -> None:
    assert split_broker(text) == expected


@pytest.mark.parametrize(("argv", "words"), [
    (["--broker", "h:1883", "--fault", "broker"], "cannot stop yours"),
    (["--broker", "h", "--listen"], "--listen is for the embedded broker"),
    (["--username", "u"], "--username goes with --broker"),
    (["--broker", "h:99999"], "the port must be a number 1..65535"),
    (["--broker", "mqtt://127.0.0.1:1883:1883"], BROKER_FORMS),
    (["--broker", "::1"], "write an IPv6 address in brackets"),
    (["--broker", "mqtts://h"], BROKER_FORMS),
    (["--broker", "mqtt://user:pw@h"], "--username and --password log in"),
    (["--broker", "h:port"], "the port must be a number"),
    (["--broker", "h/path"], BROKER_FORMS),
])
def test_demo_options_that_do_not_go_together_are_usage_errors(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and err.startswith("usage: battery-hawk demo")


async def test_listen_opens_the_embedded_broker_to_other_hosts() -> None:
    import psutil

    from tests.support.brokers import port_accepts, wait_until

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


def test_the_demo_gateway_id_on_your_broker_is_one_the_config_takes() -> None:
    from battery_hawk.config import parse_config

    gateway = demo_gateway_id("my.host_name.lan", 4242)
    assert gateway.startswith("demo-my-host-name") and gateway.endswith("-4242")
    config = parse_config({"gateway_id": gateway,
                           "devices": [{"address": "AA:BB:CC:DD:EE:01", "type": "bm6"}]})
    assert config.gateway_id == gateway
