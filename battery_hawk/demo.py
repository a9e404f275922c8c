"""``battery-hawk demo``: the whole pipeline against simulated devices and an embedded broker.

Nothing is faked past the radio: simulated monitors emit the real encrypted frames of their
protocol, and the real drivers, coordinators, publisher and MQTTInterface carry them to a
real MQTT broker (amqtt, in a child process so it can be stopped and started at will).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from typing import TextIO

from battery_hawk.app import App
from battery_hawk.config import Config, DeviceConfig, HttpConfig, MqttConfig, StorageConfig
from battery_hawk.coordinator import DeviceCoordinator
from battery_hawk.simulator.broker import (
    BrokerProcess,
    free_port,
    port_is_free,
    require_amqtt,
)
from battery_hawk.simulator.devices import FAMILIES, SimTransport

__all__ = ["DemoOptions", "demo_config", "run_demo"]

_log = logging.getLogger(__name__)

FAULT_PERIOD = 20.0  # --fault broker: seconds up, then seconds down, repeated
GATEWAY_ID = "demo"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration: float | None = None
    devices: int | None = None
    port: int = 1883
    interval: float | None = None
    fault: str | None = None
    live: bool = True
    storage: str | None = None
    http_port: int = 9105
    seed: int = 0


def demo_config(transport: SimTransport, *, port: int, interval: float, storage: str,
                http_port: int) -> Config:
    """A Config for the simulated fleet: quick reconnection so outages are short."""
    devices = tuple(
        DeviceConfig(address=dev.address, type=dev.family, name=f"{dev.name} {i + 1}",
                     poll_interval=interval, key=dev.key if dev.family == "victron" else None)
        for i, dev in enumerate(transport.devices.values())
    )
    mqtt = MqttConfig(broker="127.0.0.1", port=port, initial_retry_delay=0.5,
                      max_retry_delay=5.0, max_retries=0, health_check_interval=10.0,
                      message_queue_size=max(1000, 200 * len(devices)), keepalive=15)
    return Config(gateway_id=GATEWAY_ID, mqtt=mqtt, devices=devices,
                  http=HttpConfig(enabled=True, listen="127.0.0.1", port=http_port),
                  storage=StorageConfig(path=storage))


async def run_demo(options: DemoOptions) -> int:
    """Run the demo until Ctrl-C or ``duration``; returns the exit code."""
    require_amqtt()
    port = options.port
    if not port_is_free(port):
        port = free_port()
        print(f"port {options.port} is taken (a broker already running?); using {port}",
              flush=True)
    http_port = options.http_port if port_is_free(options.http_port) else free_port()
    count = options.devices or len(FAMILIES)
    interval = options.interval or 2.0
    transport = SimTransport.with_fleet(count, seed=options.seed,
                                        advert_interval=min(1.0, interval))
    with contextlib.ExitStack() as stack:
        storage = options.storage or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="battery-hawk-demo-"))
        config = demo_config(transport, port=port, interval=interval, storage=storage,
                             http_port=http_port)
        broker = BrokerProcess(port)
        await broker.start()
        app = App(config, transport=transport, stats_interval=10.0)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, app.request_stop)
        header = intro(config, port, options)
        print(header, flush=True)
        try:
            await app.start()
            helpers = [asyncio.create_task(_stop_after(app, options.duration),
                                           name="battery-hawk:demo-timer")]
            if options.fault == "broker":
                helpers.append(asyncio.create_task(_broker_faults(broker),
                                                   name="battery-hawk:demo-fault"))
            if options.live:
                helpers.append(asyncio.create_task(_live_view(app, broker, header, sys.stdout),
                                                   name="battery-hawk:demo-view"))
            await app.wait_stopped()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if not broker.running:
                with contextlib.suppress(RuntimeError):  # drain the last readings if we can
                    await broker.start()
        finally:
            await app.stop()
            await broker.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    stats = app.mqtt.stats if app.mqtt else None
    if stats is not None:
        print(f"demo ended: {stats.messages_published} messages published, "
              f"{stats.messages_dropped} dropped, {stats.queue_size} undelivered", flush=True)
    return 0


def intro(config: Config, port: int, options: DemoOptions) -> str:
    """What the demo is and how to watch it."""
    prefix = config.mqtt.topic_prefix
    lines = [
        f"battery-hawk demo: {len(config.devices)} simulated devices, embedded MQTT broker "
        f"on 127.0.0.1:{port}",
        f"  watch the readings:  mosquitto_sub -h 127.0.0.1 -p {port} -v -t '{prefix}/#'",
        f"  Home Assistant discovery:  mosquitto_sub -h 127.0.0.1 -p {port} -v "
        "-t 'homeassistant/#'",
        f"  status page: http://127.0.0.1:{config.http.port}/   metrics: "
        f"http://127.0.0.1:{config.http.port}/metrics",
    ]
    if options.fault == "broker":
        lines.append(f"  --fault broker: the broker stops for {FAULT_PERIOD:.0f} s every "
                     f"{FAULT_PERIOD:.0f} s; readings queue and arrive when it is back")
    lines.append("  Ctrl-C ends the demo.")
    return "\n".join(lines)


class _RecentLog(logging.Handler):
    """Keeps the last few log lines for the live view (they would scroll it away)."""

    def __init__(self, size: int = 6) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def _stop_after(app: App, duration: float | None) -> None:
    if duration is None:
        return
    await asyncio.sleep(duration)
    app.request_stop()


async def _broker_faults(broker: BrokerProcess) -> None:
    while True:
        await asyncio.sleep(FAULT_PERIOD)
        _log.warning("demo fault: stopping the broker for %.0f s", FAULT_PERIOD)
        await broker.stop()
        await asyncio.sleep(FAULT_PERIOD)
        try:
            await broker.start()
        except RuntimeError as exc:  # e.g. something else took the port meanwhile
            _log.error("demo fault: the broker did not come back (%s); trying again", exc)
            continue
        _log.warning("demo fault: broker back")


def _fmt(value: float | None, unit: str, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def render(app: App, broker_up: bool, now: float, limit: int = 30) -> str:
    """The live view as text: MQTT state, queue, and one line per device."""
    lines = []
    if app.mqtt is not None:
        s = app.mqtt.stats
        lines.append(
            f"MQTT {s.connection_state.name:<12} broker {'up' if broker_up else 'DOWN':<5}"
            f" queue {s.queue_size:<6} published {s.messages_published:<8}"
            f" reconnections {s.total_reconnections:<4} dropped {s.messages_dropped}"
        )
    lines.append("")
    lines.append(f"{'DEVICE':<20} {'MODEL':<15} {'VOLT':>7} {'SOC':>5} {'TEMP':>7} "
                 f"{'CURRENT':>8} {'STATE':<12} {'SEQ':>6} {'AGE':>5}  AVAILABLE")
    coordinators: list[DeviceCoordinator] = list(app.coordinators.values())
    for c in coordinators[:limit]:
        st = c.status
        last = st.last_reading
        r = last.reading if last else None
        age = "-" if st.last_seen is None else f"{now - st.last_seen:.0f}s"
        state = str(r.state) if r and r.state else "-"
        avail = {True: "online", False: "OFFLINE", None: "waiting"}[st.online]
        lines.append(
            f"{c.info.name[:20]:<20} {c.info.model[:15]:<15} "
            f"{_fmt(r.voltage if r else None, 'V'):>7} {_fmt(r.soc if r else None, '%', 0):>5} "
            f"{_fmt(r.temperature if r else None, 'C', 1):>7} "
            f"{_fmt(r.current if r else None, 'A'):>8} {state[:12]:<12} "
            f"{last.seq if last else '-':>6} {age:>5}  {avail}"
        )
    if len(coordinators) > limit:
        online = sum(1 for c in coordinators if c.status.online)
        lines.append(f"... and {len(coordinators) - limit} more ({online} of "
                     f"{len(coordinators)} online)")
    return "\n".join(lines)


async def _live_view(app: App, broker: BrokerProcess, header: str, out: TextIO) -> None:
    """Redraw the view every second on a terminal; print it every 5 s otherwise."""
    tty = out.isatty()
    root = logging.getLogger()
    recent = _RecentLog()
    saved = root.handlers[:]
    if tty:  # log lines go into the view instead of scrolling it away
        root.handlers[:] = [recent]
    try:
        while True:
            text = render(app, broker.running, time.monotonic())
            if tty:
                events = "\n".join(recent.lines) or "(none yet)"
                out.write(f"\x1b[H\x1b[J{header}\n\n{text}\n\nRecent events:\n{events}\n")
            else:
                out.write(text + "\n\n")
            out.flush()
            await asyncio.sleep(1.0 if tty else 5.0)
    finally:
        root.handlers[:] = saved
