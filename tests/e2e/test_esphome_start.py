"""`battery-hawk run` with an ESPHome proxy from its first moments: the first reading
through the proxy comes at start-up, not a poll interval later, and a proxy that is still
connecting is not reported dropped; a proxy that is away never holds up the local
adapter's devices."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import yaml

from battery_hawk.models import BatteryState, Reading
from tests.e2e.test_daemon_run import _get, write_config
from tests.e2e.test_esphome_proxy import collect, device_id, readings
from tests.esphome.conftest import KEY, OTHER_KEY
from tests.fakebluez.controller import FakeBlueZ
from tests.fakeesphome.devices import bm6
from tests.fakeesphome.server import FakeEsphomeProxy
from tests.support.brokers import Mosquitto, Subscriber, free_port, wait_until

REMOTE = "5A:00:00:00:00:01"  # heard only by the proxy
LOCAL = "5A:00:00:00:00:04"  # heard only by the Pi
READING = Reading(voltage=12.61, soc=71.0, temperature=18.0, state=BatteryState.NORMAL)
POLL = 600  # s: a first reading that waited for the second visit would never come here
WAIT = 40.0


class Daemon:
    """`battery-hawk run` as a subprocess, its log kept (the last 400 lines)."""

    def __init__(self, proc: asyncio.subprocess.Process, log: deque[str]) -> None:
        self.proc, self.log = proc, log
        assert proc.stderr is not None
        self.drain = asyncio.create_task(collect(proc.stderr, log), name="daemon-log")

    async def stop(self) -> None:
        """SIGTERM; it must exit 0 within 30 s."""
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await self.proc.wait()
            await self.drain
        assert self.proc.returncode == 0, "\n".join(self.log)


@contextlib.asynccontextmanager
async def running(config: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto,
                  *proxies: FakeEsphomeProxy) -> AsyncIterator[tuple[Daemon, Subscriber]]:
    """The daemon and a subscriber to its readings; on the way out the daemon is killed
    if still running, its log shown if the test failed, and the proxies killed."""
    sub = Subscriber(mosquitto.port, "battery_hawk/device/+/readings")
    await sub.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "run", "-c", str(config),
        env=fake_bluez.env(dict(os.environ)), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    daemon = Daemon(proc, deque(maxlen=400))
    try:
        yield daemon, sub
    except BaseException:
        print("\n".join(daemon.log))  # shown by pytest for a failed test
        raise
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        daemon.drain.cancel()
        await sub.stop()
        for proxy in proxies:
            await proxy.kill()


async def get_json(http_port: int, path: str) -> object:
    return json.loads(await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}{path}"))


async def proxy_away(http_port: int) -> bool:
    radios = await get_json(http_port, "/api/radios")
    return not radios["radios"][0]["connected"]  # type: ignore[index]


async def visit_failed(http_port: int, device: str) -> bool:
    """The device's last visit failed, as /api/devices says."""
    data = json.loads(await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/api/devices"))
    found = data["devices"] if isinstance(data, dict) else data
    return any(d["device_id"] == device and d["errors"]["transport"] for d in found)


async def wait_until_async(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - the daemon's state, over HTTP
            await asyncio.sleep(0.2)


def with_proxy(config: Path, port: int, *, local: bool = True) -> None:
    data = yaml.safe_load(config.read_text())
    if not local:  # a machine without an adapter of its own: the proxy is the only radio
        del data["bluetooth"]["adapter"]
    data["bluetooth"]["esphome_proxies"] = [
        {"host": "127.0.0.1", "port": port, "encryption_key": KEY}]
    config.write_text(yaml.safe_dump(data))


async def test_the_first_reading_through_a_proxy_comes_at_start_without_a_drop_warning(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    # a proxy over Wi-Fi answers within a second, after the device loops have started
    proxy = FakeEsphomeProxy([bm6(REMOTE, READING, rssi=-60)], encryption_key=KEY,
                             hello_delay=1.0, slots=4)
    await proxy.start()
    http_port = free_port()
    config = write_config(tmp_path, mosquitto.port, http_port, [
        {"address": REMOTE, "type": "bm6", "name": "Van", "poll_interval": POLL, "mode": "poll"}])
    with_proxy(config, proxy.port, local=False)
    fake_bluez.remove_adapter("hci0")
    async with running(config, fake_bluez, mosquitto, proxy) as (daemon, sub):
        await wait_until(lambda: readings(sub)[device_id(REMOTE)] >= 1, timeout=WAIT)
        assert proxy.connects[REMOTE] == 1
        warnings = [line for line in daemon.log if "WARNING" in line]
        assert not [line for line in warnings if "dropped" in line or "esphome" in line], \
            warnings
        # which radio read it, and how the proxy is, as the HTTP API and metrics say
        name, label = f"esphome:127.0.0.1:{proxy.port}", f"127.0.0.1:{proxy.port}"
        devices = await get_json(http_port, "/api/devices")
        assert [d["radio"] for d in devices] == [name]  # type: ignore[index]
        radios = (await get_json(http_port, "/api/radios"))["radios"]  # type: ignore[index]
        assert radios[0] == {  # the local adapter's stand-in follows it
            "name": name, "kind": "esphome", "connected": True, "failing": None,
            "proxy": label, "proxy_name": "fake-proxy", "esphome_version": "2025.11.0",
            "slots": {"free": 4, "limit": 4}, "last_error": None, "sessions": 1}
        metrics = (await asyncio.to_thread(
            _get, f"http://127.0.0.1:{http_port}/metrics")).decode()
        assert f'battery_hawk_esphome_proxy_connected{{proxy="{label}"}} 1.0' in metrics
        assert f'battery_hawk_esphome_proxy_slots_free{{proxy="{label}"}} 4.0' in metrics
        health = await get_json(http_port, "/health")
        assert health["proxies"] == {"connected": 1, "total": 1, "away": []}  # type: ignore[index]
        # the proxy goes away: every view says so, and why
        await proxy.kill()
        await wait_until_async(lambda: proxy_away(http_port), timeout=WAIT)
        radio = (await get_json(http_port, "/api/radios"))["radios"][0]  # type: ignore[index]
        assert (radio["connected"], radio["slots"]) == (False, {"free": 0, "limit": 0})
        assert "the API session" in radio["last_error"]
        metrics = (await asyncio.to_thread(
            _get, f"http://127.0.0.1:{http_port}/metrics")).decode()
        assert f'battery_hawk_esphome_proxy_connected{{proxy="{label}"}} 0.0' in metrics
        health = await get_json(http_port, "/health")
        assert (health["status"], health["proxies"]) == (  # type: ignore[index]
            "degraded", {"connected": 0, "total": 1, "away": [label]})
        await daemon.stop()


async def test_a_proxy_that_is_away_at_start_holds_up_no_local_device(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    fake_bluez.add_bm6(LOCAL, READING, rssi=-50)
    proxy = FakeEsphomeProxy([bm6(REMOTE, READING, rssi=-60)], encryption_key=KEY)
    await proxy.start()
    await proxy.kill()  # its port is known, nobody listens on it
    http_port = free_port()
    config = write_config(tmp_path, mosquitto.port, http_port, [
        {"address": LOCAL, "type": "bm6", "name": "Garage", "poll_interval": POLL, "mode": "poll"},
        {"address": REMOTE, "type": "bm6", "name": "Van", "poll_interval": POLL, "mode": "poll"}])
    with_proxy(config, proxy.port)
    async with running(config, fake_bluez, mosquitto, proxy) as (daemon, sub):
        await wait_until(lambda: readings(sub)[device_id(LOCAL)] >= 1, timeout=WAIT)
        # the proxy comes after the first visit of its device failed: the device is read
        # soon after, not a poll interval later
        await wait_until_async(lambda: visit_failed(http_port, device_id(REMOTE)),
                               timeout=WAIT)
        await proxy.start()
        await wait_until(lambda: readings(sub)[device_id(REMOTE)] >= 1, timeout=WAIT)
        await daemon.stop()


async def test_a_refused_key_is_said_once_naming_the_proxys_entry(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto
) -> None:
    good = FakeEsphomeProxy([bm6(REMOTE, READING, rssi=-60)], encryption_key=KEY)
    bad = FakeEsphomeProxy(encryption_key=KEY)
    await good.start()
    await bad.start()
    config = write_config(tmp_path, mosquitto.port, free_port(), [
        {"address": REMOTE, "type": "bm6", "name": "Van", "poll_interval": 1,
         "mode": "poll"}])
    data = yaml.safe_load(config.read_text())
    data["bluetooth"]["esphome_proxies"] = [
        {"host": "127.0.0.1", "port": good.port, "encryption_key": KEY},
        {"host": "127.0.0.1", "port": bad.port, "encryption_key": OTHER_KEY}]
    config.write_text(yaml.safe_dump(data))
    async with running(config, fake_bluez, mosquitto, good, bad) as (daemon, sub):
        await wait_until(lambda: readings(sub)[device_id(REMOTE)] >= 3, timeout=WAIT)
        await wait_until(lambda: bad.refused_keys >= 3, timeout=WAIT)  # retried meanwhile
        await daemon.stop()
        named = [line for line in daemon.log if "encryption_key" in line]
        assert len(named) == 1 and "bluetooth.esphome_proxies[1].encryption_key" in named[0], \
            named
        label = f"127.0.0.1:{bad.port}"
        assert not [line for line in daemon.log if f"proxy {label}: proxy {label}" in line]
